//! Faiss index file layouts (placeholder).
