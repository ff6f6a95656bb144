from corral.cli.app import app

app()
