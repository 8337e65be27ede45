//! Sensor drivers. (Being written.)
