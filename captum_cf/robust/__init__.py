"""captum_cf.robust"""
