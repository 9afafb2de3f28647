"""factory_boy factories writing through the app's scoped Session.

They commit: in tests that is a savepoint release inside the test's outer
transaction, so the data is visible to the next request (each request gets a
fresh session, as in production) and still rolled back after the test.
"""

import datetime as dt
from typing import Any

import factory
from factory.alchemy import SQLAlchemyModelFactory

from service.accounts.models import Role, User
from service.accounts.services import hash_password
from service.audience.models import (
    Membership,
    MembershipStatus,
    Segment,
    Subscriber,
    SubscriberStatus,
)
from service.db import Session
from service.delivery.models import Delivery, DeliveryStatus
from service.issues.models import Block, Issue, IssueStatus
from service.newsletters.models import Newsletter

PASSWORD = "correct horse battery staple"
# Hashing is slow on purpose; hash the test password once.
PASSWORD_HASH = hash_password(PASSWORD)


class BaseFactory(SQLAlchemyModelFactory):  # type: ignore[misc]
    class Meta:
        abstract = True
        sqlalchemy_session = Session
        sqlalchemy_session_persistence = "commit"


class UserFactory(BaseFactory):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"agent{n}@lettrine.test")
    name = factory.Faker("name", locale="fr_FR")
    role = Role.EDITOR
    password_hash = PASSWORD_HASH
    active = True


class NewsletterFactory(BaseFactory):
    class Meta:
        model = Newsletter

    slug = factory.Sequence(lambda n: f"lettre-{n}")
    name = factory.Sequence(lambda n: f"Lettre d'information {n}")
    sender_name = "Agence d'urbanisme"
    sender_email = "lettre@agence.example.org"
    legal_footer = "Vous recevez cette lettre en tant que partenaire de l'agence."
    postal_address = "1 rue de la République, 62000 Ville"


class IssueFactory(BaseFactory):
    class Meta:
        model = Issue

    newsletter = factory.SubFactory(NewsletterFactory)
    number = factory.Sequence(lambda n: n + 1)
    title = factory.Sequence(lambda n: f"Numéro {n + 1}")
    subject = factory.LazyAttribute(lambda o: f"La lettre — {o.title}")
    preheader = "Les nouvelles du territoire"
    status = IssueStatus.DRAFT


class BlockFactory(BaseFactory):
    class Meta:
        model = Block

    issue = factory.SubFactory(IssueFactory)
    position = factory.Sequence(lambda n: n)
    kind = "text"
    data: Any = factory.LazyFunction(lambda: {"title": None, "html": "<p>Bonjour</p>"})


class SegmentFactory(BaseFactory):
    class Meta:
        model = Segment

    slug = factory.Sequence(lambda n: f"segment-{n}")
    name = factory.Sequence(lambda n: f"Segment {n}")


class SubscriberFactory(BaseFactory):
    class Meta:
        model = Subscriber

    email = factory.Sequence(lambda n: f"abonne{n}@commune.example.fr")
    first_name = factory.Faker("first_name", locale="fr_FR")
    last_name = factory.Faker("last_name", locale="fr_FR")
    commune = "Liévin"
    epci = "Communauté d'agglomération de Lens-Liévin"
    status = SubscriberStatus.ACTIVE
    consent_source = "test"
    consent_at = factory.LazyFunction(lambda: dt.datetime.now(dt.UTC))


class MembershipFactory(BaseFactory):
    class Meta:
        model = Membership

    subscriber = factory.SubFactory(SubscriberFactory)
    segment = factory.SubFactory(SegmentFactory)
    status = MembershipStatus.ACTIVE


class DeliveryFactory(BaseFactory):
    class Meta:
        model = Delivery
        exclude = ("issue", "subscriber")

    issue = factory.SubFactory(IssueFactory)
    subscriber = factory.SubFactory(SubscriberFactory)
    issue_id = factory.SelfAttribute("issue.id")
    subscriber_id = factory.SelfAttribute("subscriber.id")
    status = DeliveryStatus.SENT
