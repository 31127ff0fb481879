"""The CarRacing-v3 simulator: pad mapping (``env``), the scripted expert
(``expert``), recording sessions (``record``), closed-loop evaluation
(``drive``), the ablation (``ablation``) and the main job (``demo``)."""
