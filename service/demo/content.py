"""Demo content: the first issue of the AULA's letter, its audience and the demo logins.

Pure data, read by ``service.demo.services``. Everything here is invented:
people, addresses, venues and web pages. Mail and web domains are under
``example.org`` / ``example.fr`` (and ``lettrine.example`` for back-office
logins), so a demo send can never reach a real mailbox or point to a real
site. The issue's text is written in our own words from the facts of a 2019
bulletin of the agency (``/work/shared/seed``), moved to 2027 with the same
days and months.
"""

import datetime as dt
from typing import Any, Final, NamedTuple

from service.accounts.models import Role
from service.newsletters.models import TrackingMode

# --- Back-office logins --------------------------------------------------------------------------

# Printed by the CLI after loading, so that a newcomer can log in at once.
DEMO_PASSWORD: Final = "lettrine-demo"  # noqa: S105 - a published demo password, on purpose

DEMO_USERS: Final[list[tuple[str, str, Role]]] = [
    ("admin@lettrine.example", "Camille Delattre", Role.ADMIN),
    ("publisher@lettrine.example", "Hélène Vasseur", Role.PUBLISHER),
    ("editor@lettrine.example", "Julien Caron", Role.EDITOR),
    ("analyst@lettrine.example", "Sophie Lemaire", Role.ANALYST),
]

# --- The newsletter ------------------------------------------------------------------------------

NEWSLETTER: Final[dict[str, Any]] = {
    "slug": "lettre-aula",
    "name": "La Lettre de l'AULA",
    "sender_name": "AULA — Agence d'urbanisme de l'Artois",
    "sender_email": "lettre@aula.example.org",
    "reply_to": "contact@aula.example.org",
    "legal_footer": (
        "Conformément au RGPD, vous pouvez vous désinscrire à tout moment et "
        "exercer vos droits d'accès, de rectification et d'effacement en écrivant à "
        "dpo@aula.example.org. Lettre de démonstration : personnes, adresses et lieux fictifs."
    ),
    "postal_address": (
        "AULA — Agence d'urbanisme de l'Artois\n24 rue des Ateliers\n62400 Béthune\nFrance"
    ),
    "website_url": "https://www.aula.example.org",
    "tracking_mode": TrackingMode.INDIVIDUAL,
}

# --- Segments ------------------------------------------------------------------------------------

# The name is written with an en dash, as the body itself writes it.
PETR: Final = "PETR Ternois – 7 Vallées"

# (slug, name, description, offered on the public form)
STATIC_SEGMENTS: Final[tuple[tuple[str, str, str, bool], ...]] = (
    (
        "elus",
        "Élus",
        (
            "Maires, adjoints, conseillers municipaux et communautaires du Pôle "
            f"métropolitain de l'Artois et du {PETR}."
        ),
        True,
    ),
    (
        "techniciens",
        "Techniciens des communes et EPCI",
        (
            "Agents des communes et des intercommunalités : urbanisme, aménagement, "
            "développement économique, centres-villes."
        ),
        True,
    ),
    (
        "commercants",
        "Commerçants et unions commerciales",
        (
            "Commerçants, artisans et unions commerciales des centres-villes et des bourgs "
            "du territoire."
        ),
        True,
    ),
    (
        "chambres-consulaires",
        "Chambres consulaires",
        (
            "Conseillers et élus de la CCI, de la chambre de métiers et de l'artisanat et de "
            "la chambre d'agriculture."
        ),
        False,
    ),
    (
        "partenaires",
        "Partenaires",
        (
            "Services de l'État, collectivités, agences et organismes associés aux travaux "
            "de l'Agence."
        ),
        True,
    ),
)

TERNOIS: Final = "Communauté de communes du Ternois"

# Rule segments are evaluated at send time; "function" holds "Élu" or "Élue"
# for elected members (their exact mandate is in attributes["mandat"]), hence
# the "any" over both forms.
RULE_SEGMENTS: Final[tuple[tuple[str, str, str, dict[str, Any]], ...]] = (
    (
        "elus-ternois",
        "Élus du Ternois",
        (
            "Élus et élues des communes et de la communauté de communes du Ternois "
            "(segment calculé à l'envoi)."
        ),
        {
            "all": [
                {
                    "any": [
                        {"field": "function", "op": "eq", "value": "Élu"},
                        {"field": "function", "op": "eq", "value": "Élue"},
                    ]
                },
                {"field": "epci", "op": "eq", "value": TERNOIS},
            ]
        },
    ),
)

# --- Issue no. 1 ---------------------------------------------------------------------------------

ISSUE: Final[dict[str, Any]] = {
    "number": 1,
    "title": "Janvier 2027 : le commerce de demain se dessine dans l'Artois",
    "subject": "Commerce de demain : 4 ateliers en 2027 et nos chiffres clés en ligne",
    "preheader": (
        "Liévin, Saint-Pol-sur-Ternoise, Bruay-la-Buissière puis Lens : les rendez-vous du "
        "trimestre, un guide SCoT et une note sur l'eau."
    ),
}

AULA: Final = "https://www.aula.example.org"


class BlockSpec(NamedTuple):
    kind: str
    data: dict[str, Any]
    # Segment slugs the block is limited to; empty means every recipient.
    segments: tuple[str, ...] = ()


EDITORIAL = BlockSpec(
    "text",
    {
        "title": "Édito",
        "html": (
            "<p>Vacance des cellules, achats en ligne, nouvelles attentes des habitants : le "
            "commerce de nos centres-villes et de nos bourgs se transforme vite. Depuis "
            "l'automne, l'Agence réunit élus, techniciens, commerçants et chambres consulaires "
            "pour imaginer ensemble <strong>le commerce de demain</strong>. Les ateliers de ce "
            "début d'année nous mèneront à Liévin, à Saint-Pol-sur-Ternoise et à "
            "Bruay-la-Buissière, avant une séance de clôture à Lens au printemps.</p>"
            "<p>Ce numéro revient aussi sur nos travaux dans les 7 Vallées, sur nos chiffres "
            "clés désormais publiés en ligne et sur deux outils pour vos documents "
            "d'urbanisme : une note consacrée à l'eau et un guide de mise en compatibilité "
            "avec le SCoT du Ternois.</p>"
            "<p>Bonne lecture, et au plaisir de vous retrouver lors de nos prochains "
            "rendez-vous.</p>"
            "<p><em>L'équipe de l'AULA</em></p>"
        ),
    },
)

NEWS: Final[tuple[BlockSpec, ...]] = (
    BlockSpec(
        "news",
        {
            "title": "« Le commerce de demain » : quatre rendez-vous pour nos centres-villes",
            "html": (
                "<p>Ouvert en septembre dernier à la Fabrique, à Béthune, le cycle d'animation "
                "territoriale consacré au <strong>commerce de demain</strong> entre dans sa "
                "seconde phase. Animés par un conférencier spécialiste des mutations du "
                "commerce, les ateliers font travailler ensemble élus, techniciens des "
                "communes et des intercommunalités, commerçants, unions commerciales et "
                "chambres consulaires sur des cas concrets du territoire.</p>"
                "<ul>"
                "<li><strong>16 janvier, Liévin</strong> : innover dans les services pour "
                "redonner de l'attrait aux centres-villes ;</li>"
                "<li><strong>6 février, Saint-Pol-sur-Ternoise</strong> : les nouveaux défis "
                "du commerce en milieu rural ;</li>"
                "<li><strong>6 mars, Bruay-la-Buissière</strong> : commerce et règles "
                "d'urbanisme, comment les faire jouer ensemble ;</li>"
                "<li><strong>3 avril, Lens</strong> : séance plénière de clôture.</li>"
                "</ul>"
            ),
            "image": None,
            "link": {
                "url": f"{AULA}/commerce-de-demain",
                "label": "Voir le programme et s'inscrire",
            },
        },
    ),
    # Only traders and their associations get this call for contributions.
    BlockSpec(
        "news",
        {
            "title": "Commerçants, unions commerciales : votre expérience nous intéresse",
            "html": (
                "<p>Livraison à domicile, horaires élargis, services mutualisés, vitrine en "
                "ligne : qui connaît mieux que vous les attentes de la clientèle d'un "
                "centre-ville ? L'atelier de Liévin, le 16 janvier, partira de vos initiatives "
                "pour imaginer les services qui feront revenir les habitants dans nos rues "
                "commerçantes.</p>"
                "<p>Vous portez une action originale avec votre union commerciale ? "
                "Signalez-la-nous avant l'atelier : elle pourra y être présentée.</p>"
            ),
            "image": None,
            "link": {
                "url": f"{AULA}/commerce-de-demain/proposer-une-initiative",
                "label": "Proposer une initiative",
            },
        },
        segments=("commercants",),
    ),
    BlockSpec(
        "news",
        {
            "title": "7 Vallées : dix pistes pour redynamiser les bourgs-centres",
            "html": (
                "<p>Pour accompagner la communauté de communes des 7 Vallées, l'Agence a "
                "établi avec les acteurs locaux un diagnostic partagé de ses six "
                "bourgs-centres. Ce travail a mis en lumière les grandes dynamiques du "
                "territoire et les projets déjà engagés, puis les enjeux à relever en "
                "cohérence avec le projet de territoire.</p>"
                "<p>Les propositions recueillies ont été analysées, regroupées et "
                "retravaillées : <strong>dix actions</strong>, chacune décrite dans une fiche, "
                "sont désormais soumises aux élus. Prochaines étapes : un livret de synthèse "
                "de la démarche et le choix, par les élus, des actions à engager.</p>"
            ),
            "image": None,
            "link": {
                "url": f"{AULA}/etudes/bourgs-centres-7-vallees",
                "label": "En savoir plus sur la démarche",
            },
        },
    ),
    BlockSpec(
        "news",
        {
            "title": "Nos chiffres clés passent au numérique",
            "html": (
                "<p>Le tableau de bord socio-économique annuel du Pôle métropolitain de "
                f"l'Artois et du {PETR} quitte le papier : il se consulte "
                "désormais sur notre site, dans la rubrique Ressources, avec les thèmes des "
                "éditions précédentes et les données par intercommunalité.</p>"
                "<p>Nouveauté : les données par commune, les graphiques et les cartes sont "
                "téléchargeables. Cette première version s'enrichira au fil des mois de "
                "nouvelles thématiques et de cartes interactives.</p>"
            ),
            "image": None,
            "link": {"url": f"{AULA}/ressources/chiffres-cles", "label": "Consulter les chiffres"},
        },
    ),
    BlockSpec(
        "news",
        {
            "title": "L'eau, un enjeu à part entière des documents d'urbanisme",
            "html": (
                "<p>SCoT, PLU, SDAGE, SAGE, plan de gestion des risques d'inondation : comment "
                "ces documents s'articulent-ils ? Avec l'Agence de l'Eau Artois-Picardie, "
                "l'AULA publie une note de synthèse qui rappelle le rôle de chacun des "
                "principaux documents de planification et la place des documents cadres de "
                "gestion de l'eau et de prévention des inondations.</p>"
                "<p>Un support pratique pour prendre en compte la ressource en eau et le "
                "risque d'inondation dès l'amont de vos projets.</p>"
            ),
            "image": None,
            "link": {"url": f"{AULA}/ressources/eau-et-planification", "label": "Lire la note"},
        },
    ),
    BlockSpec(
        "news",
        {
            "title": "PLU et SCoT du Ternois : un guide pour la mise en compatibilité",
            "html": (
                "<p>Exécutoire depuis juillet 2016, le SCoT du Pays du Ternois s'impose aux "
                f"documents d'urbanisme locaux. À la demande du {PETR}, qui "
                "porte le schéma, l'Agence a rédigé un guide pour aider communes et "
                "intercommunalités à faire évoluer leur PLU.</p>"
                "<p>Élaboré avec le PETR et la DDTM, il suit le plan du document d'orientation "
                "et d'objectifs (DOO) : pour chaque grande prescription, il pose les questions "
                "utiles et montre comment la traduire dans chacune des pièces du PLU.</p>"
            ),
            "image": None,
            "link": {
                "url": f"{AULA}/ressources/guide-compatibilite-scot-ternois",
                "label": "Télécharger le guide",
            },
        },
    ),
    BlockSpec(
        "news",
        {
            "title": "De la ville territoire à la ville réseau : le Bassin minier en débat",
            "html": (
                "<p>Lors de la 39e Rencontre des agences d'urbanisme, l'AULA a animé un "
                "atelier sur le Bassin minier : « De la ville territoire à la ville réseau : "
                "vers un modèle urbain alternatif ? ». Un urbaniste, un acteur du tourisme et "
                "un chercheur y ont confronté leurs regards : un territoire à plusieurs pôles "
                "est-il prêt à tirer parti des usages en réseau et des nouvelles "
                "interconnexions ?</p>"
                "<p>Ce débat ouvre le travail que l'Agence mènera cette année sur "
                "l'organisation du Pôle métropolitain : quels pôles structurants, pour quelles "
                "fonctions, et surtout quels lieux de vie pour les habitants ? Ces questions "
                "nourriront un nouveau cycle d'animation territoriale.</p>"
            ),
            "image": None,
            "link": {
                "url": f"{AULA}/actualites/ville-territoire-ville-reseau",
                "label": "Lire le compte rendu",
            },
        },
    ),
)

# Times are local wall time in Europe/Paris, as people read them on an invitation.
AGENDA = BlockSpec(
    "agenda",
    {
        "title": "Agenda",
        "events": [
            {
                "uid": "commerce-demain-2027-lievin@aula.example.org",
                "title": "Commerce de demain : innover par les services en centre-ville",
                "start": "2027-01-16T09:30",
                "end": "2027-01-16T12:30",
                "place": "Salle des congrès de l'hôtel de ville, Liévin",
                "address": "12 rue du Marché, 62800 Liévin",
                "description": (
                    "Livraison, conciergerie, horaires, outils numériques : quels services "
                    "inventer pour que les habitants reviennent dans les rues commerçantes ? "
                    "Retours d'expérience et travail en petits groupes."
                ),
                "registration_url": f"{AULA}/commerce-de-demain/lievin",
            },
            {
                "uid": "forum-energie-2027@aula.example.org",
                "title": "2e Forum de l'Énergie du Pôle métropolitain de l'Artois",
                "start": "2027-01-29T09:00",
                "end": "2027-01-29T17:00",
                "place": "Halle polyvalente, Noeux-les-Mines",
                "address": "5 avenue de la Fosse, 62290 Noeux-les-Mines",
                "description": (
                    "Une journée organisée par le Pôle métropolitain de l'Artois sur la "
                    "transition énergétique du territoire : rénovation, énergies "
                    "renouvelables, mobilité. Inscription auprès du Pôle métropolitain."
                ),
                # Registration is handled by the organiser, not by the agency.
                "registration_url": None,
            },
            {
                "uid": "commerce-demain-2027-saint-pol@aula.example.org",
                "title": "Commerce de demain : les nouveaux défis du commerce rural",
                "start": "2027-02-06T14:00",
                "end": "2027-02-06T17:00",
                "place": "Salle polyvalente du Ternois, Saint-Pol-sur-Ternoise",
                "address": "8 rue des Tisserands, 62130 Saint-Pol-sur-Ternoise",
                "description": (
                    "Tournées, points de vente collectifs, commerces multiservices : comment "
                    "maintenir une offre de proximité dans les bourgs et les villages ?"
                ),
                "registration_url": f"{AULA}/commerce-de-demain/saint-pol-sur-ternoise",
            },
            {
                "uid": "commerce-demain-2027-bruay@aula.example.org",
                "title": "Commerce de demain : commerce et règles d'urbanisme",
                "start": "2027-03-06T09:30",
                "end": "2027-03-06T12:30",
                "place": "Auditorium de la médiathèque, Bruay-la-Buissière",
                "address": "21 rue des Mineurs, 62700 Bruay-la-Buissière",
                "description": (
                    "SCoT, PLU, périmètres de centralité : les outils d'urbanisme au service "
                    "du commerce de centre-ville, expliqués à partir d'exemples locaux."
                ),
                "registration_url": f"{AULA}/commerce-de-demain/bruay-la-buissiere",
            },
            {
                "uid": "commerce-demain-2027-pleniere-lens@aula.example.org",
                "title": "Commerce de demain : séance plénière de clôture",
                "start": "2027-04-03T09:00",
                "end": "2027-04-03T12:30",
                "place": "Grand salon de l'hôtel de ville, Lens",
                "address": "3 boulevard des Houillères, 62300 Lens",
                "description": (
                    "Restitution des quatre ateliers et présentation des pistes d'action "
                    "retenues pour le territoire, suivies d'un temps d'échange avec les élus."
                ),
                "registration_url": f"{AULA}/commerce-de-demain/pleniere-lens",
            },
        ],
    },
)

RESOURCES = BlockSpec(
    "resources",
    {
        "title": "Ressources",
        "items": [
            {
                "title": "Chiffres clés 2026 : données par commune",
                "description": (
                    f"Pôle métropolitain de l'Artois et {PETR} : "
                    "population, emploi, logement, revenus, par commune et par "
                    "intercommunalité."
                ),
                "url": f"{AULA}/ressources/chiffres-cles/chiffres-cles-2026-communes.xlsx",
                "format": "XLSX",
                "size": 1_482_752,
            },
            {
                "title": "Le tableau de bord socio-économique en ligne",
                "description": "Tous les thèmes, graphiques et cartes, à consulter sur notre site.",
                "url": f"{AULA}/ressources/chiffres-cles",
                "format": "HTML",
                # A web page has no download size.
                "size": None,
            },
            {
                "title": "L'eau dans les documents de planification",
                "description": (
                    "Note de synthèse réalisée avec l'Agence de l'Eau Artois-Picardie sur "
                    "l'articulation entre urbanisme, gestion de l'eau et risque d'inondation."
                ),
                "url": f"{AULA}/ressources/eau-et-planification/note-eau-planification.pdf",
                "format": "PDF",
                "size": 2_310_528,
            },
            {
                "title": "Guide de mise en compatibilité des PLU avec le SCoT du Ternois",
                "description": (
                    "Les prescriptions du SCoT lues pas à pas, avec leur traduction attendue "
                    "dans chaque pièce du PLU."
                ),
                "url": (
                    f"{AULA}/ressources/guide-compatibilite-scot-ternois/"
                    "guide-compatibilite-plu-scot-ternois.pdf"
                ),
                "format": "PDF",
                "size": 5_872_640,
            },
        ],
    },
)

# The order the blocks appear in the issue.
ISSUE_BLOCKS: Final[tuple[BlockSpec, ...]] = (EDITORIAL, *NEWS, AGENDA, RESOURCES)

# --- Fictitious subscribers ----------------------------------------------------------------------

SUBSCRIBER_SEED: Final = 2027

# How many people are drawn for each segment (their first segment).
SUBSCRIBER_QUOTAS: Final[dict[str, int]] = {
    "elus": 85,
    "techniciens": 90,
    "commercants": 80,
    "chambres-consulaires": 25,
    "partenaires": 40,
}
# Drawn among all of them: signed up but not confirmed yet, and gone.
PENDING_COUNT: Final = 10
UNSUBSCRIBED_COUNT: Final = 8

# Second segments: (first segment, masculine title or None for any, extra segment, probability).
ALSO_IN: Final[tuple[tuple[str, str | None, str, float], ...]] = (
    # Elected members who also sit on a partner body's board.
    ("elus", None, "partenaires", 0.2),
    # Town-centre managers work with the traders day to day.
    ("techniciens", "Manager de centre-ville", "commercants", 1.0),
)

# Deterministic timestamps: imports happened over this window, sign-ups in the pending one.
CONSENT_WINDOW: Final = (dt.datetime(2025, 1, 6, 7, 0, tzinfo=dt.UTC), dt.timedelta(days=365))
PENDING_WINDOW: Final = (dt.datetime(2026, 11, 2, 7, 0, tzinfo=dt.UTC), dt.timedelta(days=18))
CONSENT_TEXT_VERSION: Final = "demo-1"
IMPORT_SOURCE: Final = "import-demo"
FORM_SOURCE: Final = "form-demo"
# Truncated like real consent evidence, in a documentation range (RFC 5737).
FORM_IP: Final = "192.0.2.0"

FIRST_NAMES_F: Final = (
    "Agnès", "Anne", "Audrey", "Aurélie", "Bernadette", "Brigitte", "Camille", "Catherine",
    "Céline", "Chloé", "Christine", "Claire", "Delphine", "Élodie", "Émilie", "Fatima",
    "Françoise", "Hélène", "Isabelle", "Julie", "Karima", "Laura", "Laurence", "Léa", "Manon",
    "Marie", "Martine", "Mathilde", "Monique", "Nadia", "Nathalie", "Pauline", "Sandrine",
    "Sonia", "Sophie", "Stéphanie", "Sylvie", "Valérie", "Véronique", "Virginie",
)  # fmt: skip
FIRST_NAMES_M: Final = (
    "Alain", "Antoine", "Benoît", "Bernard", "Bruno", "Christophe", "Daniel", "Didier", "Éric",
    "François", "Frédéric", "Guillaume", "Hervé", "Hugo", "Jean", "Jean-Luc", "Jean-Marc",
    "Jean-Pierre", "Jérôme", "Julien", "Karim", "Kévin", "Laurent", "Mathieu", "Maxime",
    "Mehdi", "Michel", "Nicolas", "Olivier", "Pascal", "Patrick", "Philippe", "Pierre",
    "Rachid", "Romain", "Sébastien", "Stéphane", "Thierry", "Thomas", "Vincent",
)  # fmt: skip
LAST_NAMES: Final = (
    "Benali", "Bensaïd", "Bernard", "Bouchez", "Boulanger", "Brunet", "Caron", "Carpentier",
    "Coquelle", "Cuvelier", "Dassonville", "Debruyne", "Delannoy", "Delattre", "Delbecq",
    "Delcroix", "Delobel", "Demarcq", "Deprez", "Descamps", "Devaux", "Dewailly", "Dhainaut",
    "Dubois", "Dufour", "Duhamel", "Dumont", "Dupont", "Durieux", "Facon", "Flahaut", "Flament",
    "Fontaine", "Gallet", "Gosselin", "Guilbert", "Hautecoeur", "Hennebelle", "Hochart",
    "Kaczmarek", "Kowalski", "Lagache", "Lebrun", "Leclercq", "Lecomte", "Lefebvre", "Lefranc",
    "Legrand", "Lemaire", "Lemoine", "Lenoir", "Leroy", "Lesage", "Lheureux", "Louchart",
    "Maes", "Mansouri", "Marchand", "Martin", "Merlin", "Moreau", "Mortier", "Noël", "Nowak",
    "Obert", "Petit", "Podevin", "Poulain", "Pruvost", "Quénu", "Ramette", "Richard",
    "Roussel", "Sauvage", "Sergeant", "Six", "Testelin", "Thuillier", "Tison", "Vandamme",
    "Vanhoutte", "Vasseur", "Verhaeghe", "Wacheux", "Warin", "Wattez", "Wisniewski",
)  # fmt: skip

# The territory: EPCI -> (mail domain, communes as (name, name after "de")).
# Elision is written out rather than computed: French has too many exceptions.
TERRITORY: Final[dict[str, tuple[str, tuple[tuple[str, str], ...]]]] = {
    "Communauté d'agglomération de Lens-Liévin": (
        "agglo-lenslievin.example.fr",
        (
            ("Lens", "de Lens"), ("Liévin", "de Liévin"), ("Avion", "d'Avion"),
            ("Harnes", "de Harnes"), ("Bully-les-Mines", "de Bully-les-Mines"),
            ("Méricourt", "de Méricourt"), ("Sallaumines", "de Sallaumines"),
            ("Loos-en-Gohelle", "de Loos-en-Gohelle"), ("Grenay", "de Grenay"),
            ("Wingles", "de Wingles"),
        ),
    ),
    "Communauté d'agglomération d'Hénin-Carvin": (
        "agglo-henincarvin.example.fr",
        (
            ("Hénin-Beaumont", "d'Hénin-Beaumont"), ("Carvin", "de Carvin"),
            ("Courrières", "de Courrières"), ("Montigny-en-Gohelle", "de Montigny-en-Gohelle"),
            ("Oignies", "d'Oignies"), ("Noyelles-Godault", "de Noyelles-Godault"),
            ("Dourges", "de Dourges"), ("Leforest", "de Leforest"),
        ),
    ),
    "Communauté d'agglomération de Béthune-Bruay, Artois Lys Romane": (
        "bethunebruay.example.fr",
        (
            ("Béthune", "de Béthune"), ("Bruay-la-Buissière", "de Bruay-la-Buissière"),
            ("Noeux-les-Mines", "de Noeux-les-Mines"), ("Auchel", "d'Auchel"),
            ("Lillers", "de Lillers"), ("Barlin", "de Barlin"), ("Isbergues", "d'Isbergues"),
            ("Beuvry", "de Beuvry"), ("Marles-les-Mines", "de Marles-les-Mines"),
            ("Houdain", "d'Houdain"),
        ),
    ),
    TERNOIS: (
        "ternoiscom.example.fr",
        (
            ("Saint-Pol-sur-Ternoise", "de Saint-Pol-sur-Ternoise"), ("Frévent", "de Frévent"),
            ("Auxi-le-Château", "d'Auxi-le-Château"), ("Pernes", "de Pernes"),
            ("Anvin", "d'Anvin"),
        ),
    ),
    "Communauté de communes des 7 Vallées": (
        "7vallees-comm.example.fr",
        (
            ("Hesdin", "d'Hesdin"), ("Marconne", "de Marconne"),
            ("Beaurainville", "de Beaurainville"), ("Auchy-lès-Hesdin", "d'Auchy-lès-Hesdin"),
            ("Blangy-sur-Ternoise", "de Blangy-sur-Ternoise"),
        ),
    ),
}  # fmt: skip

SHOP_TRADES: Final = (
    "Boucherie", "Boulangerie", "Brasserie", "Cave", "Chaussures", "Épicerie fine",
    "Fleurs", "Fromagerie", "Librairie", "Mercerie", "Optique", "Primeurs", "Quincaillerie",
    "Salon de coiffure",
)  # fmt: skip


class Profile(NamedTuple):
    """Where a subscriber works and what they do there.

    ``organisation`` is formatted with ``de_commune``, ``epci``, ``trade`` and
    ``surname``; ``domain`` with ``commune`` (slug), ``epci`` (the EPCI's mail
    domain) and ``org`` (slug of the organisation).
    """

    organisation: str
    domain: str
    # (masculine, feminine)
    titles: tuple[tuple[str, str], ...]
    weight: int = 1
    # When set, ``function`` gets this and the title goes to attributes["mandat"]:
    # rule segments select elected members on one stable value.
    function: tuple[str, str] | None = None


ELECTED: Final = ("Élu", "Élue")
STAFF_TITLES: Final = (
    ("Chargé de mission", "Chargée de mission"),
    ("Chargé d'études", "Chargée d'études"),
    ("Chef de projet", "Cheffe de projet"),
    ("Directeur", "Directrice"),
)

PROFILES: Final[dict[str, tuple[Profile, ...]]] = {
    "elus": (
        Profile(
            "Mairie {de_commune}",
            "mairie-{commune}.example.fr",
            (
                ("Maire", "Maire"),
                ("Adjoint au maire chargé du commerce", "Adjointe au maire chargée du commerce"),
                (
                    "Adjoint au maire chargé de l'urbanisme",
                    "Adjointe au maire chargée de l'urbanisme",
                ),
                (
                    "Conseiller municipal délégué au centre-ville",
                    "Conseillère municipale déléguée au centre-ville",
                ),
            ),
            weight=4,
            function=ELECTED,
        ),
        Profile(
            "{epci}",
            "{epci}",
            (
                (
                    "Vice-président chargé de l'aménagement du territoire",
                    "Vice-présidente chargée de l'aménagement du territoire",
                ),
                (
                    "Vice-président chargé du développement économique",
                    "Vice-présidente chargée du développement économique",
                ),
                ("Conseiller communautaire", "Conseillère communautaire"),
            ),
            weight=1,
            function=ELECTED,
        ),
    ),
    "techniciens": (
        Profile(
            "Mairie {de_commune}",
            "mairie-{commune}.example.fr",
            (
                ("Directeur général des services", "Directrice générale des services"),
                ("Responsable du service urbanisme", "Responsable du service urbanisme"),
                ("Manager de centre-ville", "Manager de centre-ville"),
                (
                    "Chargé de mission développement économique",
                    "Chargée de mission développement économique",
                ),
            ),
            weight=3,
        ),
        Profile(
            "{epci}",
            "{epci}",
            (
                ("Chargé de mission aménagement", "Chargée de mission aménagement"),
                ("Responsable de la planification", "Responsable de la planification"),
                (
                    "Chef de projet revitalisation des centres-bourgs",
                    "Cheffe de projet revitalisation des centres-bourgs",
                ),
                ("Chargé de mission commerce", "Chargée de mission commerce"),
            ),
            weight=2,
        ),
    ),
    "commercants": (
        Profile(
            "{trade} {surname}",
            "{org}.example.fr",
            (("Gérant", "Gérante"), ("Commerçant", "Commerçante"), ("Artisan", "Artisane")),
            weight=4,
        ),
        Profile(
            "Union commerciale {de_commune}",
            "uc-{commune}.example.org",
            (
                ("Président", "Présidente"),
                ("Vice-président", "Vice-présidente"),
                ("Trésorier", "Trésorière"),
                ("Secrétaire", "Secrétaire"),
            ),
            weight=1,
        ),
    ),
    "chambres-consulaires": (
        Profile(
            "CCI Artois",
            "cci-artois.example.fr",
            (
                ("Conseiller commerce", "Conseillère commerce"),
                ("Chargé d'études économiques", "Chargée d'études économiques"),
                ("Élu consulaire", "Élue consulaire"),
            ),
            weight=3,
        ),
        Profile(
            "Chambre de métiers et de l'artisanat Hauts-de-France",
            "cma-hautsdefrance.example.fr",
            (
                (
                    "Conseiller en développement économique",
                    "Conseillère en développement économique",
                ),
                ("Chargé de mission territoires", "Chargée de mission territoires"),
                ("Élu consulaire", "Élue consulaire"),
            ),
            weight=2,
        ),
        Profile(
            "Chambre d'agriculture du Nord-Pas de Calais",
            "agriculture-npdc.example.fr",
            (
                ("Conseiller circuits courts", "Conseillère circuits courts"),
                (
                    "Chargé de mission urbanisme et foncier",
                    "Chargée de mission urbanisme et foncier",
                ),
            ),
            weight=1,
        ),
    ),
    "partenaires": tuple(
        Profile(organisation, domain, STAFF_TITLES)
        for organisation, domain in (
            ("Pôle métropolitain de l'Artois", "pma-artois.example.org"),
            (PETR, "petr-ternois-7vallees.example.fr"),
            ("Agence de l'Eau Artois-Picardie", "eau-artois-picardie.example.fr"),
            ("DDTM du Pas-de-Calais", "ddtm62.example.fr"),
            ("Département du Pas-de-Calais", "pasdecalais.example.fr"),
            ("Région Hauts-de-France", "hautsdefrance.example.fr"),
            ("CAUE du Pas-de-Calais", "caue62.example.org"),
            ("Mission Bassin minier", "missionbassinminier.example.org"),
            ("Établissement public foncier Hauts-de-France", "epf-hdf.example.fr"),
        )
    ),
}
