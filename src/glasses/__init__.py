"""Glasses / no glasses: train, compare and explain a CNN and a wavelet-scattering network."""
