"""kartmodel"""
