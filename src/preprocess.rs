//! Image -> NCHW float tensor: shorter side resized (bilinear), centre crop, `(p - mean) / std`;
//! several images -> one `[B, 3, size, size]` batch, each preprocessed the same way.

use std::path::Path;
use trtc_ir::Tensor;

/// Preprocessing parameters, in 0-255 pixel units. Defaults fit EfficientNet-Lite0.
#[derive(Clone, Debug)]
pub struct Preprocess {
    pub size: u32,
    pub resize: u32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Default for Preprocess {
    fn default() -> Self {
        Preprocess {
            size: 224,
            resize: 256,
            mean: [127.0; 3],
            std: [128.0; 3],
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    #[error("cannot read image {path}: {detail}")]
    Read { path: String, detail: String },
    #[error("bad preprocessing value `{0}`: {1}")]
    Param(String, String),
}

/// Parse `127` or `123.7,116.3,103.5`.
pub fn parse_triple(s: &str) -> Result<[f32; 3], PreprocessError> {
    let vals: Vec<f32> = s
        .split(',')
        .map(|v| v.trim().parse::<f32>())
        .collect::<Result<_, _>>()
        .map_err(|e| PreprocessError::Param(s.into(), e.to_string()))?;
    match vals.as_slice() {
        [v] => Ok([*v; 3]),
        [a, b, c] => Ok([*a, *b, *c]),
        _ => Err(PreprocessError::Param(
            s.into(),
            "give one value or three comma-separated".into(),
        )),
    }
}

/// Decode an image, resize its shorter side to `p.resize` (bilinear) and crop its centre
/// `p.size` x `p.size`: what both [`image_to_tensor`] and [`image_to_pixels`] start from.
fn resized_crop(path: &Path, p: &Preprocess) -> Result<image::RgbImage, PreprocessError> {
    let read_err = |detail: String| PreprocessError::Read {
        path: path.display().to_string(),
        detail,
    };
    if p.size == 0 || p.resize < p.size {
        return Err(PreprocessError::Param(
            format!("size {} / resize {}", p.size, p.resize),
            "need 0 < size <= resize".into(),
        ));
    }
    let img = image::ImageReader::open(path)
        .map_err(|e| read_err(e.to_string()))?
        .with_guessed_format()
        .map_err(|e| read_err(e.to_string()))?
        .decode()
        .map_err(|e| read_err(e.to_string()))?
        .to_rgb8();
    let (w, h) = img.dimensions();
    if w == 0 || h == 0 {
        return Err(read_err("empty image".into()));
    }
    let scale = p.resize as f64 / w.min(h) as f64;
    let (nw, nh) = (
        ((w as f64 * scale).round() as u32).max(p.size),
        ((h as f64 * scale).round() as u32).max(p.size),
    );
    let resized = image::imageops::resize(&img, nw, nh, image::imageops::FilterType::Triangle);
    let (x0, y0) = ((nw - p.size) / 2, (nh - p.size) / 2);
    Ok(image::imageops::crop_imm(&resized, x0, y0, p.size, p.size).to_image())
}

/// Decode, resize, crop and normalize an image into a `[1, 3, size, size]` f32 tensor.
pub fn image_to_tensor(path: &Path, p: &Preprocess) -> Result<Tensor, PreprocessError> {
    if p.std.contains(&0.0) {
        return Err(PreprocessError::Param(
            format!("{:?}", p.std),
            "std must not be 0".into(),
        ));
    }
    let crop = resized_crop(path, p)?;
    let s = p.size as usize;
    let mut data = vec![0f32; 3 * s * s];
    for (x, y, px) in crop.enumerate_pixels() {
        let (x, y) = (x as usize, y as usize);
        for c in 0..3 {
            data[c * s * s + y * s + x] = (px[c] as f32 - p.mean[c]) / p.std[c];
        }
    }
    Tensor::from_shape(&[1, 3, s, s], &data)
        .map_err(|e| PreprocessError::Param("tensor".into(), e.to_string()))
}

/// Decode, resize and crop an image (as [`image_to_tensor`] does) into a `[1, size, size,
/// 3]` u8 tensor of its RGB pixels, for a model compiled with `--input-format u8-nhwc`:
/// the model normalizes them itself (`p.mean` and `p.std` are not used here).
pub fn image_to_pixels(path: &Path, p: &Preprocess) -> Result<Tensor, PreprocessError> {
    let crop = resized_crop(path, p)?;
    let s = p.size as usize;
    Tensor::from_shape(&[1, s, s, 3], crop.as_raw())
        .map_err(|e| PreprocessError::Param("tensor".into(), e.to_string()))
}

/// Preprocess `paths` (as `image_to_tensor` does) into one `[len, 3, size, size]` batch.
pub fn images_to_batch<P: AsRef<Path>>(
    paths: &[P],
    p: &Preprocess,
) -> Result<Tensor, PreprocessError> {
    let mut data: Vec<f32> = Vec::new();
    for path in paths {
        let t = image_to_tensor(path.as_ref(), p)?;
        let view = t
            .to_plain_array_view::<f32>()
            .map_err(|e| PreprocessError::Param("tensor".into(), e.to_string()))?;
        data.extend(view.iter());
    }
    let s = p.size as usize;
    Tensor::from_shape(&[paths.len(), 3, s, s], &data)
        .map_err(|e| PreprocessError::Param("tensor".into(), e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triples_parse() {
        assert_eq!(parse_triple("127").unwrap(), [127.0; 3]);
        assert_eq!(parse_triple("1,2,3").unwrap(), [1.0, 2.0, 3.0]);
        assert!(parse_triple("1,2").is_err());
        assert!(parse_triple("abc").is_err());
    }

    #[test]
    fn normalizes_a_uniform_image() {
        let dir = std::env::temp_dir().join(format!("trtc-pre-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("grey.png");
        image::RgbImage::from_pixel(40, 30, image::Rgb([255, 127, 0]))
            .save(&path)
            .unwrap();
        let p = Preprocess {
            size: 8,
            resize: 10,
            ..Default::default()
        };
        let t = image_to_tensor(&path, &p).unwrap();
        assert_eq!(t.shape(), &[1, 3, 8, 8]);
        let v = t.to_plain_array_view::<f32>().unwrap();
        assert_eq!(v[[0, 0, 3, 3]], 1.0);
        assert_eq!(v[[0, 1, 0, 0]], 0.0);
        assert_eq!(v[[0, 2, 7, 7]], -127.0 / 128.0);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn batches_stack_images_in_order() {
        let dir = std::env::temp_dir().join(format!("trtc-batch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a.png"), dir.join("b.png"));
        image::RgbImage::from_pixel(12, 12, image::Rgb([255, 255, 255]))
            .save(&a)
            .unwrap();
        image::RgbImage::from_pixel(12, 12, image::Rgb([127, 127, 127]))
            .save(&b)
            .unwrap();
        let p = Preprocess {
            size: 4,
            resize: 4,
            ..Default::default()
        };
        let t = images_to_batch(&[&a, &b, &a], &p).unwrap();
        assert_eq!(t.shape(), &[3, 3, 4, 4]);
        let v = t.to_plain_array_view::<f32>().unwrap();
        assert_eq!(v[[0, 2, 3, 3]], 1.0);
        assert_eq!(v[[1, 0, 0, 0]], 0.0);
        assert_eq!(v[[2, 1, 1, 2]], 1.0);
        assert_eq!(t.slice(0, 0, 1).unwrap(), image_to_tensor(&a, &p).unwrap());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn pixels_are_the_crop_before_normalization() {
        let dir = std::env::temp_dir().join(format!("trtc-pix-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("grad.png");
        image::RgbImage::from_fn(23, 17, |x, y| image::Rgb([x as u8 * 9, y as u8 * 13, 200]))
            .save(&path)
            .unwrap();
        let p = Preprocess {
            size: 8,
            resize: 12,
            mean: [120.0, 110.0, 100.0],
            std: [60.0, 50.0, 40.0],
        };
        let px = image_to_pixels(&path, &p).unwrap();
        assert_eq!(px.shape(), &[1, 8, 8, 3]);
        let px = px.to_plain_array_view::<u8>().unwrap();
        let t = image_to_tensor(&path, &p).unwrap();
        let t = t.to_plain_array_view::<f32>().unwrap();
        for y in 0..8 {
            for x in 0..8 {
                for c in 0..3 {
                    let want = (px[[0, y, x, c]] as f32 - p.mean[c]) / p.std[c];
                    assert_eq!(t[[0, c, y, x]], want);
                }
            }
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn missing_and_corrupt_images_are_errors() {
        let p = Preprocess::default();
        let e = image_to_tensor(Path::new("/nonexistent/cat.png"), &p).unwrap_err();
        assert!(e.to_string().contains("cannot read image"), "{e}");
        let path = std::env::temp_dir().join(format!("trtc-corrupt-{}.png", std::process::id()));
        std::fs::write(&path, b"\x89PNG\r\n\x1a\nnot really").unwrap();
        assert!(image_to_tensor(&path, &p).is_err());
        std::fs::remove_file(&path).ok();
    }
}
