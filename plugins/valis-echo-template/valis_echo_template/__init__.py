"""A minimal Valis Desktop provider plugin: copy this folder to start your own."""
