//! A source file's text and the arithmetic between character indexes (what the YAML
//! parser reports), byte offsets (what diagnostics label) and lines and columns (what
//! people read).

use std::ops::Range;
use std::sync::Arc;

/// A span of bytes in a source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ByteSpan {
    /// Byte offset of the first byte.
    pub offset: usize,
    /// Length in bytes.
    pub len: usize,
}

impl ByteSpan {
    /// A span of `len` bytes from `offset`.
    #[must_use]
    pub const fn new(offset: usize, len: usize) -> Self {
        Self { offset, len }
    }

    /// From the start of `self` to the end of `other`.
    #[must_use]
    pub fn to(self, other: Self) -> Self {
        let end = (other.offset + other.len).max(self.offset);
        Self::new(self.offset, end - self.offset)
    }

    /// The byte range.
    #[must_use]
    pub const fn range(self) -> Range<usize> {
        self.offset..self.offset + self.len
    }
}

impl From<ByteSpan> for miette::SourceSpan {
    fn from(span: ByteSpan) -> Self {
        (span.offset, span.len).into()
    }
}

/// The text of one file, shared cheaply between the diagnostics that label it.
#[derive(Debug, Clone)]
pub struct SourceText {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    name: String,
    text: String,
    /// Byte offset of each character, only for non-ASCII text.
    char_offsets: Option<Vec<usize>>,
    line_starts: Vec<usize>,
}

impl SourceText {
    /// A source named `name` (usually its path) holding `text`.
    #[must_use]
    pub fn new(name: impl Into<String>, text: String) -> Self {
        let char_offsets =
            (!text.is_ascii()).then(|| text.char_indices().map(|(offset, _)| offset).collect());
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self {
            inner: Arc::new(Inner {
                name: name.into(),
                text,
                char_offsets,
                line_starts,
            }),
        }
    }

    /// The name, usually the file's path.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The text.
    #[must_use]
    pub fn text(&self) -> &str {
        &self.inner.text
    }

    /// The byte offset of the character at `index`.
    #[must_use]
    pub fn byte_of_char(&self, index: usize) -> usize {
        match &self.inner.char_offsets {
            None => index.min(self.inner.text.len()),
            Some(offsets) => offsets.get(index).copied().unwrap_or(self.inner.text.len()),
        }
    }

    /// The byte span of `len` characters from character `index`.
    #[must_use]
    pub fn byte_span_of_chars(&self, index: usize, len: usize) -> ByteSpan {
        let start = self.byte_of_char(index);
        let end = self.byte_of_char(index + len);
        ByteSpan::new(start, end - start)
    }

    /// The 1-based line and 1-based column (in characters) of a byte offset.
    #[must_use]
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.inner.text.len());
        let line = self.inner.line_starts.partition_point(|&s| s <= offset) - 1;
        let start = self.inner.line_starts[line];
        let column = self
            .inner
            .text
            .get(start..offset)
            .map_or(offset - start, |prefix| prefix.chars().count());
        (line + 1, column + 1)
    }

    /// The source as miette wants it for rendering.
    #[must_use]
    pub fn to_named_source(&self) -> miette::NamedSource<String> {
        miette::NamedSource::new(self.name(), self.text().to_owned()).with_language("yaml")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_are_one_based() {
        let source = SourceText::new("x", "ab\ncdé\nf".to_owned());
        assert_eq!(source.line_col(0), (1, 1));
        assert_eq!(source.line_col(3), (2, 1));
        assert_eq!(source.line_col(8), (3, 1));
        // `é` is two bytes but one column.
        assert_eq!(source.byte_of_char(6), 7);
        assert_eq!(source.line_col(7), (2, 4));
    }
}
