//! SMPP 3.4 operator session (being written).
