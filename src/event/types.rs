//! The event-type table: one place for every name OSS sends and every
//! wildcard a rule may use.

use std::fmt;

/// The categories before the `:` in an event name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    ObjectCreated,
    ObjectDownloaded,
    ObjectRemoved,
    ObjectModified,
    ObjectRestore,
    ObjectReplication,
}

impl Category {
    pub const ALL: [Category; 6] = [
        Category::ObjectCreated,
        Category::ObjectDownloaded,
        Category::ObjectRemoved,
        Category::ObjectModified,
        Category::ObjectRestore,
        Category::ObjectReplication,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Category::ObjectCreated => "ObjectCreated",
            Category::ObjectDownloaded => "ObjectDownloaded",
            Category::ObjectRemoved => "ObjectRemoved",
            Category::ObjectModified => "ObjectModified",
            Category::ObjectRestore => "ObjectRestore",
            Category::ObjectReplication => "ObjectReplication",
        }
    }

    /// The seed's three `:All` wildcards exist only for these categories.
    pub fn has_all_wildcard(self) -> bool {
        matches!(
            self,
            Category::ObjectCreated | Category::ObjectDownloaded | Category::ObjectRemoved
        )
    }

    /// Every specific type of this category.
    pub fn mask(self) -> EventMask {
        ALL_EVENT_TYPES
            .iter()
            .filter(|t| t.category() == self)
            .fold(EventMask::EMPTY, |m, t| m.with(*t))
    }
}

macro_rules! event_types {
    ($($variant:ident => $category:ident, $name:literal;)*) => {
        /// One specific event type, exactly as it appears in `eventName`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum EventType { $($variant),* }

        /// Every specific event type, in table order.
        pub const ALL_EVENT_TYPES: &[EventType] = &[$(EventType::$variant),*];

        impl EventType {
            /// The `eventName` OSS sends.
            pub fn name(self) -> &'static str {
                match self { $(EventType::$variant => $name),* }
            }

            pub fn category(self) -> Category {
                match self { $(EventType::$variant => Category::$category),* }
            }
        }
    };
}

event_types! {
    PutObject => ObjectCreated, "ObjectCreated:PutObject";
    PostObject => ObjectCreated, "ObjectCreated:PostObject";
    CopyObject => ObjectCreated, "ObjectCreated:CopyObject";
    InitiateMultipartUpload => ObjectCreated, "ObjectCreated:InitiateMultipartUpload";
    UploadPart => ObjectCreated, "ObjectCreated:UploadPart";
    UploadPartCopy => ObjectCreated, "ObjectCreated:UploadPartCopy";
    CompleteMultipartUpload => ObjectCreated, "ObjectCreated:CompleteMultipartUpload";
    AppendObject => ObjectCreated, "ObjectCreated:AppendObject";
    PutSymlink => ObjectCreated, "ObjectCreated:PutSymlink";
    GetObject => ObjectDownloaded, "ObjectDownloaded:GetObject";
    DeleteObject => ObjectRemoved, "ObjectRemoved:DeleteObject";
    DeleteObjects => ObjectRemoved, "ObjectRemoved:DeleteObjects";
    AbortMultipartUpload => ObjectRemoved, "ObjectRemoved:AbortMultipartUpload";
    UpdateObjectMeta => ObjectModified, "ObjectModified:UpdateObjectMeta";
    ChangeStorageClass => ObjectModified, "ObjectModified:ChangeStorageClass";
    FinishRestore => ObjectRestore, "ObjectRestore:FinishRestore";
    ReplicationCreated => ObjectReplication, "ObjectReplication:ObjectCreated";
    ReplicationModified => ObjectReplication, "ObjectReplication:ObjectModified";
    ReplicationRemoved => ObjectReplication, "ObjectReplication:ObjectRemoved";
}

impl EventType {
    pub fn bit(self) -> u32 {
        1 << (self as u8)
    }

    /// Parses a specific event name (`ObjectCreated:PutObject`).
    pub fn from_name(name: &str) -> Option<EventType> {
        ALL_EVENT_TYPES.iter().copied().find(|t| t.name() == name)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of specific event types, one bit each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct EventMask(pub u32);

impl EventMask {
    pub const EMPTY: EventMask = EventMask(0);

    pub fn with(self, t: EventType) -> EventMask {
        EventMask(self.0 | t.bit())
    }
    pub fn contains(self, t: EventType) -> bool {
        self.0 & t.bit() != 0
    }
    pub fn union(self, other: EventMask) -> EventMask {
        EventMask(self.0 | other.0)
    }
    pub fn intersects(self, other: EventMask) -> bool {
        self.0 & other.0 != 0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// The types in the set, in table order.
    pub fn types(self) -> impl Iterator<Item = EventType> {
        ALL_EVENT_TYPES
            .iter()
            .copied()
            .filter(move |t| self.contains(*t))
    }
}

/// What a rule's `events` entry names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventPattern {
    /// `ObjectCreated:PutObject`
    Specific(EventType),
    /// The seed's `ObjectCreated:All`, `ObjectDownloaded:All`, `ObjectRemoved:All`:
    /// subject to the region policy.
    All(Category),
    /// Today's OSS `Category:*`: every type of the category, everywhere.
    Star(Category),
}

/// The name as a rule writes it (`ObjectCreated:PutObject`,
/// `ObjectCreated:All`, `ObjectCreated:*`).
impl std::fmt::Display for EventPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EventPattern::Specific(t) => f.write_str(t.name()),
            EventPattern::All(c) => write!(f, "{}:All", c.name()),
            EventPattern::Star(c) => write!(f, "{}:*", c.name()),
        }
    }
}

impl EventPattern {
    /// Parses a rule's event name; the error says what is accepted.
    pub fn parse(s: &str) -> Result<EventPattern, String> {
        if let Some(t) = EventType::from_name(s) {
            return Ok(EventPattern::Specific(t));
        }
        if let Some((cat, rest)) = s.split_once(':') {
            if let Some(c) = Category::ALL.iter().copied().find(|c| c.name() == cat) {
                match rest {
                    "*" => return Ok(EventPattern::Star(c)),
                    "All" if c.has_all_wildcard() => return Ok(EventPattern::All(c)),
                    "All" => {
                        return Err(format!(
                            "unknown event type \"{s}\": OSS has no {cat}:All; use \"{cat}:*\""
                        ));
                    }
                    _ => {}
                }
                let specific: Vec<&str> = c.mask().types().map(|t| t.name()).collect();
                return Err(format!(
                    "unknown event type \"{s}\"; {cat} has {}, and the wildcard {cat}:*",
                    specific.join(", ")
                ));
            }
        }
        let cats: Vec<&str> = Category::ALL.iter().map(|c| c.name()).collect();
        Err(format!(
            "unknown event type \"{s}\"; expected Category:Name with a category among {}",
            cats.join(", ")
        ))
    }

    /// The specific types the pattern selects.
    pub fn mask(self) -> EventMask {
        match self {
            EventPattern::Specific(t) => EventMask::EMPTY.with(t),
            EventPattern::All(c) | EventPattern::Star(c) => c.mask(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nineteen_types_with_unique_names_and_bits() {
        assert_eq!(ALL_EVENT_TYPES.len(), 19);
        let mut names: Vec<_> = ALL_EVENT_TYPES.iter().map(|t| t.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 19);
        let all = ALL_EVENT_TYPES
            .iter()
            .fold(EventMask::EMPTY, |m, t| m.with(*t));
        assert_eq!(all.0.count_ones(), 19);
    }

    #[test]
    fn wildcards_expand_to_their_category() {
        let created = EventPattern::parse("ObjectCreated:All").unwrap();
        assert_eq!(created, EventPattern::All(Category::ObjectCreated));
        assert_eq!(created.mask().types().count(), 9);
        assert!(created.mask().contains(EventType::PutSymlink));
        assert!(!created.mask().contains(EventType::GetObject));
        let star = EventPattern::parse("ObjectCreated:*").unwrap();
        assert_eq!(star.mask(), created.mask());
        assert_eq!(
            EventPattern::parse("ObjectRemoved:All")
                .unwrap()
                .mask()
                .types()
                .count(),
            3
        );
        assert_eq!(
            EventPattern::parse("ObjectDownloaded:*").unwrap().mask(),
            EventMask::EMPTY.with(EventType::GetObject)
        );
        for c in Category::ALL {
            let p = EventPattern::parse(&format!("{}:*", c.name())).unwrap();
            assert_eq!(p, EventPattern::Star(c));
            assert!(!p.mask().is_empty());
        }
    }

    #[test]
    fn unknown_names_are_explained() {
        let e = EventPattern::parse("ObjectModified:All").unwrap_err();
        assert!(e.contains("ObjectModified:*"), "{e}");
        let e = EventPattern::parse("ObjectCreated:Put").unwrap_err();
        assert!(e.contains("ObjectCreated:PutObject"), "{e}");
        let e = EventPattern::parse("PutObject").unwrap_err();
        assert!(e.contains("ObjectCreated"), "{e}");
    }
}
