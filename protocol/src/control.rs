//! Control-plane messages. (Being written.)
