//! Positions in the original Dockerfile text.

use serde::Serialize;

/// A stretch of the original text: byte range plus 1-based line and column (in bytes) of its
/// start and end. `end_line`/`end_column` point at the last byte's line and one past its column,
/// so an empty span has `end_column == column`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub line: u32,
    pub column: u32,
    pub end_line: u32,
    pub end_column: u32,
}

impl Span {
    /// The smallest span covering both.
    pub fn join(self, other: Span) -> Span {
        let (first, _) = if self.start <= other.start {
            (self, other)
        } else {
            (other, self)
        };
        let last = if self.end >= other.end { self } else { other };
        Span {
            start: first.start,
            end: last.end,
            line: first.line,
            column: first.column,
            end_line: last.end_line,
            end_column: last.end_column,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

/// Byte offsets of line starts, to turn byte ranges into line/column spans.
#[derive(Clone, Debug)]
pub struct LineIndex {
    starts: Vec<usize>,
    len: usize,
}

impl LineIndex {
    pub fn new(text: &str) -> LineIndex {
        let mut starts = Vec::with_capacity(text.len() / 32 + 1);
        starts.push(0);
        starts.extend(memchr::memchr_iter(b'\n', text.as_bytes()).map(|i| i + 1));
        LineIndex {
            starts,
            len: text.len(),
        }
    }

    /// 1-based line and column of a byte offset (clamped to the text).
    pub fn position(&self, offset: usize) -> (u32, u32) {
        let offset = offset.min(self.len);
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let start = self.starts.get(line - 1).copied().unwrap_or(0);
        (to_u32(line), to_u32(offset - start + 1))
    }

    pub fn span(&self, start: usize, end: usize) -> Span {
        let end = end.max(start);
        let (line, column) = self.position(start);
        let (end_line, end_column) = if end > start {
            let (l, c) = self.position(end - 1);
            (l, c + 1)
        } else {
            (line, column)
        };
        Span {
            start,
            end,
            line,
            column,
            end_line,
            end_column,
        }
    }

    /// Byte range of a 1-based line, without its line break.
    pub fn line_range(&self, line: u32) -> Option<(usize, usize)> {
        let index = (line as usize).checked_sub(1)?;
        let start = *self.starts.get(index)?;
        let end = self
            .starts
            .get(index + 1)
            .map_or(self.len, |next| next.saturating_sub(1));
        Some((start, end.max(start)))
    }

    pub fn line_count(&self) -> usize {
        self.starts.len()
    }
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_bytes() {
        let index = LineIndex::new("ab\nсd\n\nx");
        assert_eq!(index.position(0), (1, 1));
        assert_eq!(index.position(2), (1, 3));
        assert_eq!(index.position(3), (2, 1));
        assert_eq!(index.position(5), (2, 3));
        assert_eq!(index.position(7), (3, 1));
        assert_eq!(index.position(8), (4, 1));
        assert_eq!(index.position(100), (4, 2));
        let span = index.span(3, 6);
        assert_eq!(
            (span.line, span.column, span.end_line, span.end_column),
            (2, 1, 2, 4)
        );
        assert_eq!(index.line_range(2), Some((3, 6)));
        assert_eq!(index.line_range(5), None);
        assert_eq!(index.line_count(), 4);
        assert_eq!(index.span(0, 1).join(index.span(3, 6)), index.span(0, 6));
    }
}
