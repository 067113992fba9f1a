//! Overlay snapshots and layer diffs: upper dir → layer tar (whiteouts), safe layer extraction.
