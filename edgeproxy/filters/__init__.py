"""Built-in filters; each module holds one filter and its factory."""
