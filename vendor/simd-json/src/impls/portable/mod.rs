#![allow(unused_imports, dead_code)]
pub mod deser;
pub mod stage1;

pub(crate) use deser::parse_str;
pub(crate) use stage1::SimdInput;
