//! The durable buffer. (Being written.)
