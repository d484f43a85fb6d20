"""Qt widgets of the desktop window."""
