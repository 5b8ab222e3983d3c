"""captum_cf.datasets"""
