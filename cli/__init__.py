"""balerc.cli"""
