mod borrowed;
mod owned;
mod shared;

pub use self::borrowed::from_refvalue as from_refborrowed_value;
pub use self::borrowed::from_value as from_borrowed_value;
pub use self::owned::from_refvalue as from_refowned_value;
pub use self::owned::from_value as from_owned_value;

pub use self::borrowed::to_value as to_borrowed_value;
pub use self::owned::to_value as to_owned_value;
