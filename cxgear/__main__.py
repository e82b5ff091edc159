from cxgear.cli import app

app()
