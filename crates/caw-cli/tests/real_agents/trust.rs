//! Trust prompts, read from the TUI screen.
