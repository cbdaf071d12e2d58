"""One folder per model family, transformers-style: configuration_x.py and modeling_x.py."""
