//! Compression of layer streams, recognised by content (magic bytes), never by file name.

use std::io::{self, BufReader, Cursor, Read};

/// How a layer stream is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Uncompressed,
    Gzip,
    Zstd,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// Read buffer for layer streams: large enough that reads and decompression run in big chunks.
pub(crate) const STREAM_BUFFER: usize = 1 << 20;

impl Compression {
    /// Recognises the compression from the first bytes of a stream (at least 4 for zstd).
    pub fn detect(prefix: &[u8]) -> Compression {
        if prefix.starts_with(&GZIP_MAGIC) {
            Compression::Gzip
        } else if prefix.starts_with(&ZSTD_MAGIC) {
            Compression::Zstd
        } else {
            Compression::Uncompressed
        }
    }

    /// The compression a layer media type names (OCI's `tar`, `tar+gzip`, `tar+zstd`, their
    /// non-distributable forms, and Docker's `tar.gzip`, `tar.zstd`); `None` when it names no
    /// layer tar.
    pub fn from_layer_media_type(media_type: &str) -> Option<Compression> {
        let tar = media_type
            .strip_prefix("application/vnd.oci.image.layer.")
            .or_else(|| media_type.strip_prefix("application/vnd.docker.image.rootfs."))?;
        if tar.ends_with("tar+gzip") || tar.ends_with("tar.gzip") {
            Some(Compression::Gzip)
        } else if tar.ends_with("tar+zstd") || tar.ends_with("tar.zstd") {
            Some(Compression::Zstd)
        } else if tar.ends_with("tar") {
            Some(Compression::Uncompressed)
        } else {
            None
        }
    }

    /// The OCI media-type suffix (`+gzip`, `+zstd`, or nothing).
    pub fn media_type_suffix(self) -> &'static str {
        match self {
            Compression::Uncompressed => "",
            Compression::Gzip => "+gzip",
            Compression::Zstd => "+zstd",
        }
    }
}

/// Detects the compression of `input` by its first bytes and returns a streaming reader of the
/// decompressed bytes.
pub fn decompress<'a, R: Read + 'a>(input: R) -> io::Result<(Compression, Box<dyn Read + 'a>)> {
    let (compression, whole) = sniff(input)?;
    Ok((compression, decoder(compression, whole)?))
}

/// A stream with its first bytes, read to recognise it, put back in front.
pub type Sniffed<R> = io::Chain<Cursor<Vec<u8>>, R>;

/// Detects the compression of `input` by its first bytes; returns it and the whole stream,
/// still compressed, for [`decoder`].
pub fn sniff<R: Read>(mut input: R) -> io::Result<(Compression, Sniffed<R>)> {
    let mut prefix = [0u8; ZSTD_MAGIC.len()];
    let mut filled = 0;
    while filled < prefix.len() {
        match input.read(&mut prefix[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let head = prefix.get(..filled).unwrap_or_default().to_vec();
    Ok((Compression::detect(&head), Cursor::new(head).chain(input)))
}

/// A streaming reader of `input` decompressed as `compression` says.
pub fn decoder<'a, R: Read + 'a>(
    compression: Compression,
    input: R,
) -> io::Result<Box<dyn Read + 'a>> {
    let buffered = BufReader::with_capacity(STREAM_BUFFER, input);
    Ok(match compression {
        Compression::Uncompressed => Box::new(buffered),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buffered)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn roundtrip(compression: Compression, payload: &[u8]) -> Vec<u8> {
        let encoded = match compression {
            Compression::Uncompressed => payload.to_vec(),
            Compression::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(payload).unwrap();
                e.finish().unwrap()
            }
            Compression::Zstd => zstd::encode_all(payload, 1).unwrap(),
        };
        let (found, mut reader) = decompress(encoded.as_slice()).unwrap();
        assert_eq!(found, compression);
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn detects_and_decodes_each_compression() {
        let payload: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
        for c in [
            Compression::Uncompressed,
            Compression::Gzip,
            Compression::Zstd,
        ] {
            assert_eq!(roundtrip(c, &payload), payload, "{c:?}");
        }
    }

    #[test]
    fn layer_media_types_name_their_compression() {
        for (media_type, expected) in [
            (
                "application/vnd.oci.image.layer.v1.tar",
                Some(Compression::Uncompressed),
            ),
            (
                "application/vnd.oci.image.layer.v1.tar+gzip",
                Some(Compression::Gzip),
            ),
            (
                "application/vnd.oci.image.layer.v1.tar+zstd",
                Some(Compression::Zstd),
            ),
            (
                "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                Some(Compression::Gzip),
            ),
            (
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
                Some(Compression::Gzip),
            ),
            (
                "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                Some(Compression::Gzip),
            ),
            ("application/vnd.oci.image.config.v1+json", None),
            ("application/vnd.oci.image.layer.v1.tar+bzip2", None),
        ] {
            assert_eq!(
                Compression::from_layer_media_type(media_type),
                expected,
                "{media_type}"
            );
        }
    }

    #[test]
    fn short_and_empty_streams_are_uncompressed() {
        assert_eq!(roundtrip(Compression::Uncompressed, b""), b"");
        assert_eq!(roundtrip(Compression::Uncompressed, b"\x1f"), b"\x1f");
    }
}
