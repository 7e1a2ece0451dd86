//! Passes over a lowered program (one file each, its doc comment stating the rule and
//! when it must not fire), and the arena placement an instance uses. They read and rewrite
//! `program::Program` only: no device, no graph.

pub mod arena;
pub mod chains;
pub mod clip_into_depthwise;
pub mod concat_views;
pub mod int8_convs;
pub mod pool_epilogue;
