"""Loading, scanning and splitting face images."""
