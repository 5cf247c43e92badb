//! Multi-row statements in a few recurring shapes, so each is parsed and planned once.

/// Splits `rows` for multi-row statements into a few recurring sizes: runs of
/// [`ROWS_PER_STATEMENT`], then the rest in descending powers of two. Each statement text
/// then recurs, so SQLite parses and plans it once and the connection's cache keeps it
/// (mark such statements `persistent`); at most eight shapes exist per statement.
pub(crate) fn statement_chunks<T>(rows: &[T]) -> Vec<&[T]> {
    let mut chunks = Vec::new();
    let mut rest = rows;
    while !rest.is_empty() {
        let size = if rest.len() >= ROWS_PER_STATEMENT {
            ROWS_PER_STATEMENT
        } else {
            1 << rest.len().ilog2()
        };
        let (chunk, tail) = rest.split_at(size);
        chunks.push(chunk);
        rest = tail;
    }
    chunks
}

/// The most rows one multi-row statement carries (23 parameters a row stay far below
/// SQLite's limit).
pub(crate) const ROWS_PER_STATEMENT: usize = 100;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_chunks_recur_in_a_few_sizes_and_keep_order() {
        let rows: Vec<u32> = (0..357).collect();
        let chunks = statement_chunks(&rows);
        let sizes: Vec<usize> = chunks.iter().map(|c| c.len()).collect();
        assert_eq!(sizes, vec![100, 100, 100, 32, 16, 8, 1]);
        assert_eq!(chunks.concat(), rows);
        assert!(statement_chunks::<u32>(&[]).is_empty());
        for n in 1..=300usize {
            let v: Vec<usize> = (0..n).collect();
            let c = statement_chunks(&v);
            assert_eq!(c.concat(), v);
            assert!(c
                .iter()
                .all(|c| c.len() == ROWS_PER_STATEMENT || c.len().is_power_of_two()));
        }
    }
}
