"""balerc.train"""
