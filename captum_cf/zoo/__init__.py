"""captum_cf.zoo"""
