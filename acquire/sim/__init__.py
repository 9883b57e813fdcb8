"""Simulated hardware: specimen, optics and detector models for offline acquisition."""
