"""BibTeX entries the feature sets cite (the same entries matminer's featurizers return)."""

WARD_2016 = (
    "@article{ward_agrawal_choudary_wolverton_2016, title={A general-purpose "
    "machine learning framework for predicting properties of inorganic materials}, "
    "volume={2}, DOI={10.1038/npjcompumats.2017.28}, number={1}, journal={npj "
    "Computational Materials}, author={Ward, Logan and Agrawal, Ankit and Choudhary, "
    "Alok and Wolverton, Christopher}, year={2016}}"
)
DEML_2016 = (
    "@article{deml_ohayre_wolverton_stevanovic_2016, title={Predicting density "
    "functional theory total energies and enthalpies of formation of metal-nonmetal "
    "compounds by linear regression}, volume={47}, DOI={10.1002/chin.201644254}, "
    "number={44}, journal={ChemInform}, author={Deml, Ann M. and Ohayre, Ryan and "
    "Wolverton, Chris and Stevanovic, Vladan}, year={2016}}"
)
MATMINER_2018 = (
    "@article{ward_dunn_faghaninia_2018, title={Matminer: An open source toolkit for materials data "
    "mining}, volume={152}, DOI={10.1016/j.commatsci.2018.05.018}, journal={Computational Materials "
    "Science}, author={Ward, Logan and Dunn, Alexander and Faghaninia, Alireza and Zimmermann, Nils E.R. "
    "and Bajaj, Saurabh and Wang, Qi and Montoya, Joseph and Chen, Jiming and Bystrom, Kyle and Dylla, "
    "Maxwell and Chard, Kyle and Asta, Mark and Persson, Kristin A. and Snyder, G. Jeffrey and Foster, "
    "Ian and Jain, Anubhav}, year={2018}, pages={60-69}}"
)
