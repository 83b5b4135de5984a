"""Engines that run on this machine."""
