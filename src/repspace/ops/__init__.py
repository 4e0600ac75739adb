"""Low-level helpers at the bottom of the house, imported by every layer above (no repspace imports but errors):
exact top-k (`search`), row normalisation, the faiss loader, the progress bar."""
