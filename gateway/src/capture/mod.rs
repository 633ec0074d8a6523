//! Capture files: recorded serial reads with their timing.
