//! Layer compression for the wire. The store keeps built and imported layers uncompressed
//! (digest = DiffID); push compresses them — gzip as independent members in parallel over
//! all cores, or multithreaded zstd. Pulled layers stay as they came and are pushed as they are.

use oci_spec::image::Digest;
use sha2::Digest as _;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;
use std::thread::JoinHandle;

/// How layers travel to a registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    Gzip,
    Zstd,
}

impl Compression {
    /// The OCI media type of a layer compressed this way.
    pub fn layer_media_type(self) -> &'static str {
        match self {
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

/// The digest and size of a written blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub digest: Digest,
    pub size: u64,
}

/// Input per gzip member: large enough that the lost dictionary at member boundaries costs
/// well under 1%, small enough to keep every core busy on small layers.
const GZIP_BLOCK: usize = 2 << 20;
/// libdeflate's level 1 (its fastest strategy): on a tree of /usr/lib, 4% larger than its
/// level 2 (about the size zlib's and Go's default level 6 give, what Docker and BuildKit
/// push) and 2% larger than skopeo's pgzip default, for 20% less CPU than level 2 and under
/// half of zlib-rs's at level 6. Compression is what a push spends its CPU on: while the
/// link takes the output faster than the cores make it (about 80 MiB/s on 2 cores here) the
/// CPU sets a push's time; on a slower link `--compression-level 2` sends 4% fewer bytes.
const GZIP_LEVEL: i32 = 1;
const ZSTD_LEVEL: i32 = 3;

impl Compression {
    /// The levels `--compression-level` accepts: libdeflate's for gzip, zstd's own.
    pub fn levels(self) -> std::ops::RangeInclusive<i32> {
        match self {
            Compression::Gzip => 0..=12,
            Compression::Zstd => 1..=22,
        }
    }
}

/// Compresses the file `input` into `output` and returns the compressed blob's digest and size.
pub fn compress_file(
    input: &Path,
    output: &Path,
    compression: Compression,
) -> io::Result<BlobInfo> {
    compress_file_feeding(input, output, compression, None, &mut |_| {})
}

/// [`compress_file`] at `level` (the default when `None`; see [`Compression::levels`]),
/// handing each compressed piece to `feed` as it is written, so an upload can run beside the
/// compression. The file is not fsynced: it is a temporary the upload reads again only after
/// a fault, and removes when done.
pub fn compress_file_feeding(
    input: &Path,
    output: &Path,
    compression: Compression,
    level: Option<i32>,
    feed: &mut dyn FnMut(&[u8]),
) -> io::Result<BlobInfo> {
    if let Some(level) = level.filter(|level| !compression.levels().contains(level)) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} has no compression level {level} (levels {:?})",
                compression.name(),
                compression.levels()
            ),
        ));
    }
    let mut reader = File::open(input)?;
    let mut writer = HashWriter::new(BufWriter::with_capacity(1 << 20, File::create(output)?));
    let mut feeding = Feeding {
        inner: &mut writer,
        feed,
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    match compression {
        Compression::Gzip => gzip_parallel(
            &mut reader,
            &mut feeding,
            threads,
            level.unwrap_or(GZIP_LEVEL),
        )?,
        Compression::Zstd => {
            let level = level.unwrap_or(ZSTD_LEVEL);
            let mut encoder = zstd::stream::write::Encoder::new(&mut feeding, level)?;
            encoder.multithread(u32::try_from(threads).unwrap_or(1))?;
            io::copy(&mut reader, &mut encoder)?;
            encoder.finish()?;
        }
    }
    let (inner, info) = writer.finish();
    inner.into_inner().map_err(|e| e.into_error())?;
    Ok(info)
}

/// A writer that also hands what it writes to a callback.
struct Feeding<'a, W> {
    inner: W,
    feed: &'a mut dyn FnMut(&[u8]),
}

impl<W: Write> Write for Feeding<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        (self.feed)(buf.get(..n).unwrap_or_default());
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Gzip as a series of independent members (RFC 1952 §2.2 allows concatenation; gunzip, Go's
/// gzip reader and every registry client read it as one stream), compressed in parallel: a
/// rolling window of one more block than there are cores is in flight, while this thread
/// reads the next block and writes out the oldest member, so no core waits for a round.
fn gzip_parallel(
    reader: &mut impl Read,
    writer: &mut impl Write,
    threads: usize,
    level: i32,
) -> io::Result<()> {
    let mut in_flight: VecDeque<JoinHandle<io::Result<Vec<u8>>>> = VecDeque::new();
    let mut any = false;
    loop {
        let mut block = Vec::with_capacity(GZIP_BLOCK);
        reader
            .by_ref()
            .take(GZIP_BLOCK as u64)
            .read_to_end(&mut block)?;
        let at_end = block.len() < GZIP_BLOCK;
        // An empty layer is still one (empty) member.
        if !block.is_empty() || !any {
            any = true;
            if in_flight.len() > threads
                && let Some(oldest) = in_flight.pop_front()
            {
                write_member(oldest, writer)?;
            }
            in_flight.push_back(std::thread::spawn(move || gzip_member(&block, level)));
        }
        if at_end {
            break;
        }
    }
    while let Some(oldest) = in_flight.pop_front() {
        write_member(oldest, writer)?;
    }
    Ok(())
}

fn write_member(
    member: JoinHandle<io::Result<Vec<u8>>>,
    writer: &mut impl Write,
) -> io::Result<()> {
    let member = member
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("gzip worker panicked")))?;
    writer.write_all(&member)
}

/// One gzip member, compressed whole by libdeflate (faster than any streaming deflate at the
/// same ratio; members are independent anyway).
fn gzip_member(block: &[u8], level: i32) -> io::Result<Vec<u8>> {
    let level = libdeflater::CompressionLvl::new(level)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "invalid gzip level"))?;
    let mut compressor = libdeflater::Compressor::new(level);
    let mut member = vec![0u8; compressor.gzip_compress_bound(block.len())];
    let size = compressor
        .gzip_compress(block, &mut member)
        .map_err(io::Error::other)?;
    member.truncate(size);
    Ok(member)
}

/// A writer that hashes and counts what passes through.
struct HashWriter<W> {
    inner: W,
    hasher: sha2::Sha256,
    size: u64,
}

impl<W: Write> HashWriter<W> {
    fn new(inner: W) -> Self {
        HashWriter {
            inner,
            hasher: sha2::Sha256::new(),
            size: 0,
        }
    }

    fn finish(self) -> (W, BlobInfo) {
        let info = BlobInfo {
            digest: crate::image::digest_from_hash(&self.hasher.finalize()),
            size: self.size,
        };
        (self.inner, info)
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(compression: Compression, data: &[u8]) {
        roundtrip_at(compression, None, data);
    }

    /// Returns the compressed size.
    fn roundtrip_at(compression: Compression, level: Option<i32>, data: &[u8]) -> u64 {
        let dir = tempfile::tempdir().unwrap();
        let (input, packed) = (dir.path().join("in"), dir.path().join("packed"));
        std::fs::write(&input, data).unwrap();
        let mut fed = Vec::new();
        let info = compress_file_feeding(&input, &packed, compression, level, &mut |piece| {
            fed.extend_from_slice(piece)
        })
        .unwrap();
        let bytes = std::fs::read(&packed).unwrap();
        assert_eq!(fed, bytes, "the upload is fed exactly the file's bytes");
        assert_eq!(info.size, bytes.len() as u64);
        assert_eq!(info.digest, crate::image::sha256_digest(&bytes));
        let (_, mut decoder) = crate::snapshot::decompress(bytes.as_slice()).unwrap();
        let mut unpacked = Vec::new();
        decoder.read_to_end(&mut unpacked).unwrap();
        assert_eq!(unpacked, data);
        info.size
    }

    #[test]
    fn levels_trade_size_and_bad_levels_are_refused() {
        let text: Vec<u8> = (0..GZIP_BLOCK + 999)
            .flat_map(|i| format!("line {} of a layer\n", i % 7919).into_bytes())
            .collect();
        let fastest = roundtrip_at(Compression::Gzip, Some(1), &text);
        let best = roundtrip_at(Compression::Gzip, Some(12), &text);
        assert!(best < fastest, "level 12 {best} vs level 1 {fastest}");
        roundtrip_at(Compression::Zstd, Some(19), &text);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("in"), b"x").unwrap();
        for (compression, level) in [(Compression::Gzip, 13), (Compression::Zstd, 0)] {
            let refused = compress_file_feeding(
                &dir.path().join("in"),
                &dir.path().join("out"),
                compression,
                Some(level),
                &mut |_| {},
            );
            assert_eq!(
                refused.map_err(|e| e.kind()).err(),
                Some(io::ErrorKind::InvalidInput)
            );
        }
    }

    #[test]
    fn gzip_members_and_zstd_roundtrip() {
        // Several gzip blocks and a ragged tail, with both compressible and random-ish bytes.
        let mut data = Vec::new();
        let mut x: u32 = 1;
        while data.len() < 2 * GZIP_BLOCK + 12345 {
            x = x.wrapping_mul(1664525).wrapping_add(1013904223);
            let bytes = x.to_le_bytes();
            data.extend_from_slice(if x.is_multiple_of(3) {
                b"layer "
            } else {
                &bytes[..3]
            });
        }
        roundtrip(Compression::Gzip, &data);
        roundtrip(Compression::Zstd, &data);
        roundtrip(Compression::Gzip, b"");
        roundtrip(Compression::Zstd, b"");
    }

    #[test]
    fn gzip_output_is_read_by_system_gunzip() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..(GZIP_BLOCK * 3)).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.path().join("in"), &data).unwrap();
        compress_file(
            &dir.path().join("in"),
            &dir.path().join("in.gz"),
            Compression::Gzip,
        )
        .unwrap();
        let out = std::process::Command::new("gzip")
            .arg("-dc")
            .arg(dir.path().join("in.gz"))
            .output()
            .expect("gzip must be installed");
        assert!(out.status.success());
        assert_eq!(out.stdout, data);
    }
}
