"""kartplay"""
