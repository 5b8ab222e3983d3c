"""captum_cf.metrics"""
