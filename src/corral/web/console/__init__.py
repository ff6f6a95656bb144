"""The web console: sign-in, playground, keys, usage, fine-tuning, evals, batches."""

from corral.web.console import pages, signin

routers = (signin.router, signin.icon_router, pages.router)
