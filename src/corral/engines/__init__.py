"""Engines: the things that actually run models, behind one interface."""
