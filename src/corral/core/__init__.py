"""Settings, errors and ids: imported by every layer, importing none of them."""
