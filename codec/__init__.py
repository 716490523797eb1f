"""balerc.codec"""
