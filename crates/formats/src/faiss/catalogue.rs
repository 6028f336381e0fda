//! Names of Faiss fourccs and why vmig refuses the ones it does not read.

const REEXPORT: &str = "Re-export the vectors from the source embeddings (or rebuild the index as \
                        IndexFlat, IndexIDMap(IndexFlat), IndexIVFFlat, IndexHNSWFlat or \
                        IndexRefineFlat).";

/// The Faiss class written under `fourcc`, or `None` when vmig does not know the fourcc.
pub fn class_name(fourcc: &[u8; 4]) -> Option<&'static str> {
    Some(match fourcc {
        b"IxF2" => "IndexFlatL2",
        b"IxFI" => "IndexFlatIP",
        b"IxFl" => "IndexFlat",
        b"IxMp" => "IndexIDMap",
        b"IxM2" => "IndexIDMap2",
        b"IwFl" => "IndexIVFFlat",
        b"IvFl" | b"IvFL" => "IndexIVFFlat (legacy format)",
        b"IwFd" => "IndexIVFFlatDedup",
        b"IwPQ" => "IndexIVFPQ",
        b"IwQR" => "IndexIVFPQR",
        b"IvPQ" => "IndexIVFPQ (legacy format)",
        b"IvQR" => "IndexIVFPQR (legacy format)",
        b"IwSq" | b"IwSQ" => "IndexIVFScalarQuantizer",
        b"IvSQ" => "IndexIVFScalarQuantizer (legacy format)",
        b"IxPq" | b"IxPQ" | b"IxPo" => "IndexPQ",
        b"IxSQ" => "IndexScalarQuantizer",
        b"IHNf" => "IndexHNSWFlat",
        b"IHNp" => "IndexHNSWPQ",
        b"IHNs" => "IndexHNSWSQ",
        b"IHN2" => "IndexHNSW2Level",
        b"IHNc" | b"IHc2" => "IndexHNSWCagra",
        b"IxPT" => "IndexPreTransform",
        b"IxRF" => "IndexRefine",
        b"IxHe" | b"IxHE" => "IndexLSH",
        b"IxRq" | b"IxRQ" => "IndexResidualQuantizer",
        b"IxLS" => "IndexLocalSearchQuantizer",
        b"IxPR" => "IndexProductResidualQuantizer",
        b"IxPL" => "IndexProductLocalSearchQuantizer",
        b"ILfs" => "IndexLocalSearchQuantizerFastScan",
        b"IRfs" => "IndexResidualQuantizerFastScan",
        b"IPLf" => "IndexProductLocalSearchQuantizerFastScan",
        b"IPRf" => "IndexProductResidualQuantizerFastScan",
        b"IVLf" => "IndexIVFLocalSearchQuantizerFastScan",
        b"IVRf" => "IndexIVFResidualQuantizerFastScan",
        b"NPLf" => "IndexIVFProductLocalSearchQuantizerFastScan",
        b"NPRf" => "IndexIVFProductResidualQuantizerFastScan",
        b"IwLS" => "IndexIVFLocalSearchQuantizer",
        b"IwRQ" => "IndexIVFResidualQuantizer",
        b"IwPL" => "IndexIVFProductLocalSearchQuantizer",
        b"IwPR" => "IndexIVFProductResidualQuantizer",
        b"IwSh" => "IndexIVFSpectralHash",
        b"IwIQ" => "IndexIVFIndependentQuantizer",
        b"IwPf" => "IndexIVFPQFastScan",
        b"IPfs" => "IndexPQFastScan",
        b"Ix2L" => "Index2Layer",
        b"IxLa" => "IndexLattice",
        b"Imiq" => "MultiIndexQuantizer",
        b"ImRQ" => "ResidualCoarseQuantizer",
        b"INSf" => "IndexNSGFlat",
        b"INSp" => "IndexNSGPQ",
        b"INSs" => "IndexNSGSQ",
        b"INNf" => "IndexNNDescentFlat",
        b"IRMf" => "IndexRowwiseMinMax",
        b"IRMh" => "IndexRowwiseMinMaxFP16",
        b"Ixrq" => "IndexRaBitQ",
        b"Iwrq" => "IndexIVFRaBitQ",
        b"IS48" => "IndexSVSLVQ4x8",
        b"IS44" => "IndexSVSLVQ4x4",
        b"ISVD" => "IndexSVS",
        b"IBxF" => "IndexBinaryFlat",
        b"IBMp" => "IndexBinaryIDMap",
        b"IBM2" => "IndexBinaryIDMap2",
        b"IBwF" => "IndexBinaryIVF",
        b"IBHf" => "IndexBinaryHNSW",
        b"IBFf" => "IndexBinaryFromFloat",
        b"IBHc" => "IndexBinaryHNSWCagra",
        b"IwPn" | b"IwP2" => "IndexIVFFlatPanorama",
        b"IxFP" | b"IxFp" => "IndexFlatPanorama",
        b"IxRP" => "IndexRefinePanorama",
        b"IHfP" => "IndexHNSWFlatPanorama",
        b"IBHh" => "IndexBinaryHash",
        b"IBHm" => "IndexBinaryMultiHash",
        b"null" => "no index (fourcc `null`)",
        _ => return None,
    })
}

/// Why vmig refuses an index type it knows (`None` for the types it reads and for unknown
/// fourccs). The text completes a sentence that starts with the class name.
pub fn refusal_reason(fourcc: &[u8; 4]) -> Option<String> {
    let lossy = |what: &str| {
        format!("stores {what}; the original vectors cannot be recovered exactly. {REEXPORT}")
    };
    let later = |what: &str| format!("is not supported by vmig yet ({what}).");
    Some(match fourcc {
        b"IwPQ" | b"IwQR" | b"IvPQ" | b"IvQR" | b"IxPq" | b"IxPQ" | b"IxPo" | b"IHNp" | b"IwPf"
        | b"IPfs" => lossy("product-quantised (PQ) codes"),
        b"IwSq" | b"IwSQ" | b"IvSQ" | b"IxSQ" | b"IHNs" => {
            lossy("scalar-quantised codes (8/6/4-bit or fp16)")
        }
        b"IHN2" | b"Ix2L" => lossy("two-level quantised codes"),
        b"IxPT" => lossy(
            "vectors after a transform (PCA, OPQ, rotation, normalisation…) was applied to them",
        ),
        b"IxHe" | b"IxHE" => lossy("binary hashes (LSH) of the vectors"),
        b"IxRq" | b"IxRQ" | b"IxLS" | b"IxPR" | b"IxPL" | b"ILfs" | b"IRfs" | b"IPLf" | b"IPRf"
        | b"IVLf" | b"IVRf" | b"NPLf" | b"NPRf" | b"IwLS" | b"IwRQ" | b"IwPL" | b"IwPR" => {
            lossy("additive-quantiser codes (residual / local-search quantisation)")
        }
        b"IwSh" => lossy("spectral-hash bits"),
        b"IwIQ" => lossy("codes of an inner IVF index behind an independent quantizer"),
        b"IxLa" => lossy("lattice-quantised codes"),
        b"IRMf" | b"IRMh" => lossy("row-wise min-max scaled codes of an inner index"),
        b"Ixrq" | b"Iwrq" => lossy("RaBitQ binary codes"),
        b"IS48" | b"IS44" => lossy("LVQ-compressed vectors"),
        b"Imiq" | b"ImRQ" => {
            "is a coarse quantizer only and holds no database vectors.".to_string()
        }
        b"INSf" | b"INSp" | b"INSs" => later("NSG graph indexes are outside vmig's first scope"),
        b"INNf" => later("NNDescent graph indexes are outside vmig's first scope"),
        b"ISVD" => later("SVS indexes keep their data in an opaque blob"),
        b"IHNc" | b"IHc2" => later("HNSW-CAGRA indexes are outside vmig's first scope"),
        b"IBFf" => lossy("binarised float vectors"),
        b"IBHh" | b"IBHm" => later("binary hash indexes are outside vmig's first scope"),
        b"IBHc" => later("binary HNSW-CAGRA indexes are outside vmig's first scope"),
        b"IwPn" | b"IwP2" | b"IxFP" | b"IxFp" | b"IxRP" | b"IHfP" => {
            later("Panorama indexes keep their vectors in a level-wise layout vmig does not read")
        }
        _ => return None,
    })
}

/// The four bytes as text, non-printable bytes escaped as `\xNN`.
pub(crate) fn printable(fourcc: &[u8; 4]) -> String {
    let mut s = String::new();
    for &b in fourcc {
        if b.is_ascii_graphic() || b == b' ' {
            s.push(b as char);
        } else {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_reasons() {
        assert_eq!(class_name(b"IwPQ"), Some("IndexIVFPQ"));
        assert!(refusal_reason(b"IwPQ")
            .unwrap()
            .contains("cannot be recovered"));
        assert_eq!(refusal_reason(b"IxF2"), None);
        // Read since issue #15 (an IxRF with a lossy refine index is refused by the parser).
        for f in [b"IBHf", b"IBwF", b"IwFd", b"IvFl", b"IvFL", b"IxRF"] {
            assert_eq!(refusal_reason(f), None, "{}", printable(f));
            assert!(class_name(f).is_some());
        }
        assert!(refusal_reason(b"IwP2").unwrap().contains("Panorama"));
        assert_eq!(class_name(b"zzzz"), None);
        assert_eq!(printable(&[b'I', 0, 0xff, b'x']), "I\\x00\\xffx");
    }
}
