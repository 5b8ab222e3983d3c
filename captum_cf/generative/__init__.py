"""captum_cf.generative"""
