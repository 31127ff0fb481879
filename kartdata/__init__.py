"""kartdata"""
