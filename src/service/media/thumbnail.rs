//! Thumbnail sizes and the image work behind them: choosing a size, reading an image's
//! dimensions, and rendering a still thumbnail. The decoding functions block; callers run
//! them on blocking threads.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{PngDecoder, PngEncoder};
use image::codecs::webp::WebPDecoder;
use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits};

use crate::error::{Error, ErrorKind, Result};
use crate::store::ImageKind;

/// Images with more pixels than this are not decoded (Synapse's default too): a small
/// compressed file can claim enormous dimensions.
pub const MAX_PIXELS: u64 = 32_000_000;
/// Ceiling on what a decoder may allocate, enough for `MAX_PIXELS` at 16 bits per channel.
const MAX_ALLOC: u64 = 256 << 20;
const MAX_SIDE: u32 = 20_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Crop,
    Scale,
}

impl Method {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "crop" => Some(Self::Crop),
            "scale" => Some(Self::Scale),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Crop => "crop",
            Self::Scale => "scale",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub width: u32,
    pub height: u32,
    pub method: Method,
}

const fn size(width: u32, height: u32, method: Method) -> Size {
    Size {
        width,
        height,
        method,
    }
}

/// The sizes the spec asks servers to produce.
pub const SIZES: [Size; 5] = [
    size(32, 32, Method::Crop),
    size(96, 96, Method::Crop),
    size(320, 240, Method::Scale),
    size(640, 480, Method::Scale),
    size(800, 600, Method::Scale),
];

/// The smallest size at least as large as the request in both dimensions, preferring the
/// requested method; `None` when the request is larger than every size, so that only the
/// original is large enough.
pub fn choose(width: u32, height: u32, method: Method) -> Option<Size> {
    let fits = |s: &&Size| s.width >= width && s.height >= height;
    let area = |s: &&Size| u64::from(s.width) * u64::from(s.height);
    SIZES
        .iter()
        .filter(|s| s.method == method)
        .filter(fits)
        .min_by_key(area)
        .or_else(|| SIZES.iter().filter(fits).min_by_key(area))
        .copied()
}

/// How to turn an image into a thumbnail of a size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Shrink to exactly this (the aspect ratio is kept by the caller's arithmetic).
    Scale { width: u32, height: u32 },
    /// Shrink to `scaled_*` (possibly not at all), then cut out `width`×`height` at `x`,`y`.
    Crop {
        scaled_width: u32,
        scaled_height: u32,
        x: u32,
        y: u32,
        width: u32,
        height: u32,
    },
}

/// What `size` makes of a `width`×`height` image; `None` when it would leave the image as
/// it is (an image without pixels included). Never enlarges: the spec forbids upscaling.
pub fn plan(width: u32, height: u32, size: Size) -> Option<Plan> {
    if width == 0 || height == 0 {
        return None;
    }
    let (w, h) = (u64::from(width), u64::from(height));
    let (bw, bh) = (u64::from(size.width), u64::from(size.height));
    // Every result is at most the image's own side, so it fits in a u32.
    let side = |v: u64| u32::try_from(v.max(1)).unwrap_or(u32::MAX);
    let offset = |v: u64| u32::try_from(v).unwrap_or(0);
    match size.method {
        Method::Scale => {
            if w <= bw && h <= bh {
                return None;
            }
            // Fit inside the box: the side that overflows most decides the factor.
            let (tw, th) = if w * bh > h * bw {
                (bw, h * bw / w)
            } else {
                (w * bh / h, bh)
            };
            Some(Plan::Scale {
                width: side(tw),
                height: side(th),
            })
        }
        Method::Crop => {
            // The largest centred region with the box's aspect ratio.
            let (cw, ch) = if w * bh > h * bw {
                ((h * bw / bh).max(1), h)
            } else {
                (w, (w * bh / bw).max(1))
            };
            if cw <= bw {
                if (cw, ch) == (w, h) {
                    return None;
                }
                return Some(Plan::Crop {
                    scaled_width: width,
                    scaled_height: height,
                    x: offset((w - cw) / 2),
                    y: offset((h - ch) / 2),
                    width: side(cw),
                    height: side(ch),
                });
            }
            // Shrink so the region becomes the box (rounding up, never below it), then cut.
            let sw = (w * bw).div_ceil(cw).max(bw);
            let sh = (h * bw).div_ceil(cw).max(bh);
            Some(Plan::Crop {
                scaled_width: side(sw),
                scaled_height: side(sh),
                x: offset((sw - bw) / 2),
                y: offset((sh - bh) / 2),
                width: side(bw),
                height: side(bh),
            })
        }
    }
}

impl ImageKind {
    pub fn sniff(head: &[u8]) -> Option<Self> {
        match image::guess_format(head).ok()? {
            ImageFormat::Png => Some(Self::Png),
            ImageFormat::Jpeg => Some(Self::Jpeg),
            ImageFormat::Gif => Some(Self::Gif),
            ImageFormat::WebP => Some(Self::Webp),
            _ => None,
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Gif => "image/gif",
            Self::Webp => "image/webp",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpg",
            Self::Gif => "gif",
            Self::Webp => "webp",
        }
    }

    fn format(self) -> ImageFormat {
        match self {
            Self::Png => ImageFormat::Png,
            Self::Jpeg => ImageFormat::Jpeg,
            Self::Gif => ImageFormat::Gif,
            Self::Webp => ImageFormat::WebP,
        }
    }
}

/// An image's size as displayed (after its EXIF orientation) and whether it may move.
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    pub width: u32,
    pub height: u32,
    pub animated: bool,
}

fn cannot_thumbnail(e: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::Unknown,
        format!("Cannot generate thumbnails for the requested content: {e}"),
    )
}

fn too_large() -> Error {
    Error::new(ErrorKind::TooLarge, "Content is too large to thumbnail")
}

fn image_error(e: ImageError) -> Error {
    match e {
        ImageError::Limits(_) => too_large(),
        other => cannot_thumbnail(other),
    }
}

fn open(path: &Path) -> Result<BufReader<File>> {
    File::open(path)
        .map(BufReader::new)
        .map_err(Error::internal)
}

fn decoder(path: &Path, kind: ImageKind) -> Result<impl ImageDecoder> {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    let mut reader = ImageReader::with_format(open(path)?, kind.format());
    reader.limits(limits);
    let decoder = reader.into_decoder().map_err(image_error)?;
    let (w, h) = decoder.dimensions();
    if u64::from(w) * u64::from(h) > MAX_PIXELS || decoder.total_bytes() > MAX_ALLOC {
        return Err(too_large());
    }
    if w == 0 || h == 0 {
        return Err(cannot_thumbnail("the image has no pixels"));
    }
    Ok(decoder)
}

fn oriented(width: u32, height: u32, orientation: image::metadata::Orientation) -> (u32, u32) {
    use image::metadata::Orientation::*;
    match orientation {
        Rotate90 | Rotate270 | Rotate90FlipH | Rotate270FlipH => (height, width),
        NoTransforms | Rotate180 | FlipHorizontal | FlipVertical => (width, height),
    }
}

/// Reads only the headers.
pub fn probe(path: &Path, kind: ImageKind) -> Result<Probe> {
    let mut decoder = decoder(path, kind)?;
    let (w, h) = decoder.dimensions();
    let orientation = decoder.orientation().map_err(image_error)?;
    let (width, height) = oriented(w, h, orientation);
    let animated = match kind {
        ImageKind::Jpeg => false,
        ImageKind::Png => PngDecoder::new(open(path)?)
            .and_then(|d| d.is_apng())
            .map_err(image_error)?,
        ImageKind::Webp => WebPDecoder::new(open(path)?)
            .map_err(image_error)?
            .has_animation(),
        // Finding out means walking every frame; treat every GIF as possibly animated.
        ImageKind::Gif => true,
    };
    Ok(Probe {
        width,
        height,
        animated,
    })
}

/// A rendered thumbnail written to a file.
#[derive(Debug, Clone, Copy)]
pub struct Rendered {
    pub kind: ImageKind,
    pub width: u32,
    pub height: u32,
}

/// Decodes the image (its first frame), shrinks it for `size` (or keeps its size when
/// `size` is `None` or would not shrink it), and writes a still PNG, or a JPEG for JPEG
/// photos, to `dest`.
pub fn render(source: &Path, kind: ImageKind, size: Option<Size>, dest: &Path) -> Result<Rendered> {
    let mut decoder = decoder(source, kind)?;
    let orientation = decoder.orientation().map_err(image_error)?;
    let mut img = DynamicImage::from_decoder(decoder).map_err(image_error)?;
    img.apply_orientation(orientation);
    let planned = size.and_then(|s| plan(img.width(), img.height(), s));
    let img = match planned {
        None => img,
        Some(Plan::Scale { width, height }) => img.thumbnail_exact(width, height),
        Some(Plan::Crop {
            scaled_width,
            scaled_height,
            x,
            y,
            width,
            height,
        }) => {
            let scaled = if (scaled_width, scaled_height) == (img.width(), img.height()) {
                img
            } else {
                img.thumbnail_exact(scaled_width, scaled_height)
            };
            scaled.crop_imm(x, y, width, height)
        }
    };
    let file = File::create_new(dest).map_err(Error::internal)?;
    let mut out = BufWriter::new(file);
    let written = if kind == ImageKind::Jpeg {
        DynamicImage::ImageRgb8(img.to_rgb8())
            .write_with_encoder(JpegEncoder::new_with_quality(&mut out, 80))
            .map(|()| ImageKind::Jpeg)
    } else {
        img.write_with_encoder(PngEncoder::new(&mut out))
            .map(|()| ImageKind::Png)
    };
    let written = written.map_err(Error::internal)?;
    out.flush().map_err(Error::internal)?;
    Ok(Rendered {
        kind: written,
        width: img.width(),
        height: img.height(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choose_prefers_the_method_then_the_smallest_that_is_large_enough() {
        assert_eq!(choose(32, 32, Method::Crop), Some(SIZES[0]));
        assert_eq!(choose(40, 20, Method::Crop), Some(SIZES[1]));
        assert_eq!(choose(50, 50, Method::Scale), Some(SIZES[2]));
        assert_eq!(choose(321, 10, Method::Scale), Some(SIZES[3]));
        // No crop size is that large: the smallest scale size that is.
        assert_eq!(choose(200, 200, Method::Crop), Some(SIZES[2]));
        assert_eq!(choose(801, 600, Method::Scale), None);
    }

    #[test]
    fn scale_fits_inside_the_box_and_never_enlarges() {
        let s = size(320, 240, Method::Scale);
        assert_eq!(
            plan(1000, 500, s),
            Some(Plan::Scale {
                width: 320,
                height: 160
            })
        );
        assert_eq!(
            plan(500, 1000, s),
            Some(Plan::Scale {
                width: 120,
                height: 240
            })
        );
        assert_eq!(plan(300, 200, s), None);
        // Extreme aspect ratios keep at least one pixel.
        assert_eq!(
            plan(100_000, 1, s),
            Some(Plan::Scale {
                width: 320,
                height: 1
            })
        );
    }

    #[test]
    fn crop_gives_the_box_from_the_centre() {
        let s = size(96, 96, Method::Crop);
        assert_eq!(
            plan(400, 200, s),
            Some(Plan::Crop {
                scaled_width: 192,
                scaled_height: 96,
                x: 48,
                y: 0,
                width: 96,
                height: 96
            })
        );
        // Smaller than the box: cut to its aspect ratio without enlarging.
        assert_eq!(
            plan(50, 80, s),
            Some(Plan::Crop {
                scaled_width: 50,
                scaled_height: 80,
                x: 0,
                y: 15,
                width: 50,
                height: 50
            })
        );
        assert_eq!(plan(60, 60, s), None);
    }

    /// Found by fuzzing (`fuzz/regressions/media_thumbnail/`): a GIF whose logical screen
    /// is 0×0 made the crop arithmetic underflow.
    #[test]
    fn images_without_pixels_have_no_plan() {
        for s in SIZES {
            assert_eq!(plan(0, 0, s), None);
            assert_eq!(plan(0, 7, s), None);
            assert_eq!(plan(7, 0, s), None);
        }
    }
}
