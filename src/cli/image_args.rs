//! The image preprocessing flags, one definition for every command that feeds images
//! (`trtc run --image`, `trtc calibrate`), so calibration sees images exactly as inference
//! does.

use anyhow::Result;
use clap::Args;
use trtc::preprocess::{parse_triple, Preprocess};

#[derive(Args, Debug, Clone)]
pub struct ImageArgs {
    /// Centre-crop size.
    #[arg(long, default_value_t = 224)]
    pub size: u32,
    /// Shorter side is resized to this first (bilinear).
    #[arg(long, default_value_t = 256)]
    pub resize: u32,
    /// Mean subtracted from each pixel (0-255): one value or three comma-separated.
    #[arg(long, default_value = "127")]
    pub mean: String,
    /// Divisor after the mean (0-255 units): one value or three comma-separated.
    #[arg(long, default_value = "128")]
    pub std: String,
}

impl ImageArgs {
    pub fn preprocess(&self) -> Result<Preprocess> {
        Ok(Preprocess {
            size: self.size,
            resize: self.resize,
            mean: parse_triple(&self.mean)?,
            std: parse_triple(&self.std)?,
        })
    }
}
