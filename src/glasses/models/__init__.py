"""The CNN, the scattering network and the classifier head they share."""
