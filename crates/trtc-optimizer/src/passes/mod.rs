//! The passes, one rule per file.

pub mod bn_folding;
pub mod constant_folding;
pub mod dead_layers;
pub mod horizontal_fusion;
pub mod pad_into_conv;
pub mod pool_conv_swap;
pub mod shape_from_input;
pub mod vertical_fusion;

pub use bn_folding::BnFolding;
pub use constant_folding::ConstantFolding;
pub use dead_layers::DeadLayers;
pub use horizontal_fusion::HorizontalFusion;
pub use pad_into_conv::PadIntoConv;
pub use pool_conv_swap::PoolConvSwap;
pub use shape_from_input::ShapeFromInput;
pub use vertical_fusion::VerticalFusion;
