//! Uploaded and remote media: content sniffing, then the image decode and resize behind
//! thumbnails, with the decoder limits the server sets.

use std::path::PathBuf;
use std::sync::OnceLock;

use hearth::service::media::thumbnail::{Method, choose, plan, probe, render};
use hearth::store::ImageKind;

/// A directory of this process for the image files (the thumbnail code reads and writes
/// files, as the media store keeps them).
fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("hearth-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        dir
    })
}

/// The bytes as an uploaded file: sniffed as the upload path does, probed (headers only)
/// as a thumbnail request does first, then rendered at a size the input's last byte picks
/// (a listed size for either method, or the still first frame at full size).
pub fn media_thumbnail(data: &[u8]) -> bool {
    let Some(kind) = ImageKind::sniff(data) else {
        return false;
    };
    let dir = scratch();
    let source = dir.join("source");
    let dest = dir.join("thumbnail");
    std::fs::write(&source, data).expect("the scratch file is writable");
    let _ = std::fs::remove_file(&dest);
    let Ok(probed) = probe(&source, kind) else {
        return false;
    };
    let pick = data.last().copied().unwrap_or(0);
    let method = if pick & 1 == 0 {
        Method::Crop
    } else {
        Method::Scale
    };
    let (width, height) = [
        (32, 32),
        (96, 96),
        (320, 240),
        (640, 480),
        (800, 600),
        (1, 1),
    ][usize::from(pick >> 1) % 6];
    let size = choose(width, height, method);
    let target = size.filter(|s| plan(probed.width, probed.height, *s).is_some());
    if let Ok(rendered) = render(&source, kind, target, &dest) {
        // Never larger than the image (no upscaling), nor than the size asked for.
        let (max_w, max_h) = target.map_or((probed.width, probed.height), |s| {
            (s.width.min(probed.width), s.height.min(probed.height))
        });
        assert!(
            rendered.width <= max_w.max(1) && rendered.height <= max_h.max(1),
            "a {}x{} thumbnail of a {}x{} image for {target:?}",
            rendered.width,
            rendered.height,
            probed.width,
            probed.height
        );
    }
    true
}
