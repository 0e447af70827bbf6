"""Attribution methods (IG from scratch, Captum IG, LIME, SHAP) and their figures."""
