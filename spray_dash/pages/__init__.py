"""Dash pages: one module per page, each with ``register_page``, a layout and thin callbacks."""
