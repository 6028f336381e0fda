//! Milvus bulk-import staging writers (placeholder).
