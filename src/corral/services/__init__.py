"""Services: request orchestration above the engines. No HTTP here."""
