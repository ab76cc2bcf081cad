#!/usr/bin/env python3
"""Writes the labelled PII corpus tests/data/pii/corpus.jsonl (deterministic for a given seed).

Every record is synthetic: e-mails with headers, plain text, CSV rows and JSON snippets in English,
German, French and Spanish, holding personal data of the types slm's rule detectors look for, and
look-alikes that are not personal data (numbers failing their checksum, version strings, order
numbers, out-of-range addresses). Each record is one JSON line:

  {"id": "en-email-0007", "lang": "en", "format": "email", "text": "...",
   "entities": [{"type": "EMAIL", "start": 12, "end": 31}, ...],
   "negatives": [{"kind": "card_bad_luhn", "start": 40, "end": 59}, ...]}

Offsets are code points of `text` (Python str indices), end exclusive. `negatives` marks the
look-alikes (for reading; the scorer treats any finding there as a false positive like any other).

Labelling conventions: a phone number's span includes its country code and its parentheses; a
card number or IBAN includes its internal spaces or dashes; dates and clock times are separate
DATE_TIME spans ("15 Apr 2024" and "09:12:33"), except an ISO 8601 date-time, which is one span;
a URL's span ends before trailing sentence punctuation; an e-mail address in angle brackets is
the address without the brackets.

Usage: tools/make_pii_corpus.py [--seed 7] [--records 320] [--out tests/data/pii/corpus.jsonl]
"""

import argparse
import json
import random
import string

LANGS = ["en", "de", "fr", "es"]
FORMATS = ["text", "email", "csv", "json"]

FIRST = {
    "en": ["James", "Olivia", "Noah", "Emma", "Liam", "Ava", "Mason", "Sophia"],
    "de": ["Lukas", "Anna", "Jonas", "Lea", "Felix", "Marie", "Jürgen", "Sören"],
    "fr": ["Louis", "Chloé", "Hugo", "Léa", "Théo", "Manon", "Zoé", "Benoît"],
    "es": ["Mateo", "Lucía", "Hugo", "Sofía", "Martín", "Paula", "Iñigo", "Begoña"],
}
LAST = {
    "en": ["Smith", "Johnson", "Brown", "Taylor", "Wilson", "Clarke"],
    "de": ["Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Groß"],
    "fr": ["Martin", "Bernard", "Dubois", "Lefèvre", "Moreau", "Girard"],
    "es": ["García", "Fernández", "López", "Martínez", "Sánchez", "Núñez"],
}
DOMAINS = {
    "en": ["example.com", "mail.example.org", "shop.example.co.uk", "acme.example"],
    "de": ["beispiel.de", "firma.example.de", "post.example.at"],
    "fr": ["exemple.fr", "societe.example.fr", "mail.example.be"],
    "es": ["ejemplo.es", "empresa.example.es", "correo.example.mx"],
}
MONTHS = {
    "en": ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"],
    "de": ["Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober",
           "November", "Dezember"],
    "fr": ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
           "novembre", "décembre"],
    "es": ["enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre",
           "noviembre", "diciembre"],
}
SHORT_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]

# Sentence frames per language: {x} is where the value goes.
FRAMES = {
    "EMAIL": {
        "en": ["Please write to {x} with any questions.", "My new address is {x}.", "Contact: {x}"],
        "de": ["Bitte schreiben Sie an {x}.", "Meine neue Adresse lautet {x}.", "Kontakt: {x}"],
        "fr": ["Écrivez-moi à {x} si besoin.", "Ma nouvelle adresse est {x}.", "Contact : {x}"],
        "es": ["Escríbame a {x} si tiene dudas.", "Mi nueva dirección es {x}.", "Contacto: {x}"],
    },
    "PHONE": {
        "en": ["Call me on {x} after five.", "Phone: {x}", "You can reach the office at {x}."],
        "de": ["Rufen Sie mich unter {x} an.", "Telefon: {x}", "Das Büro erreichen Sie unter {x}."],
        "fr": ["Appelez-moi au {x} après 17 h.", "Tél. : {x}", "Le bureau est joignable au {x}."],
        "es": ["Llámeme al {x} por la tarde.", "Teléfono: {x}", "La oficina atiende en el {x}."],
    },
    "CREDIT_CARD": {
        "en": ["The card ending in my wallet is {x}.", "Please charge card {x}.", "Card number: {x}"],
        "de": ["Bitte belasten Sie die Karte {x}.", "Kartennummer: {x}", "Meine Kreditkarte: {x}"],
        "fr": ["Merci de débiter la carte {x}.", "Numéro de carte : {x}", "Ma carte bancaire : {x}"],
        "es": ["Cargue el importe a la tarjeta {x}.", "Número de tarjeta: {x}", "Mi tarjeta: {x}"],
    },
    "IBAN": {
        "en": ["Please transfer the refund to {x}.", "IBAN: {x}", "Our account is {x}."],
        "de": ["Bitte überweisen Sie den Betrag auf {x}.", "IBAN: {x}", "Unser Konto: {x}"],
        "fr": ["Merci de virer le montant sur {x}.", "IBAN : {x}", "Notre compte : {x}"],
        "es": ["Transfiera el importe a {x}.", "IBAN: {x}", "Nuestra cuenta: {x}"],
    },
    "US_SSN": {
        "en": ["My social security number is {x}.", "SSN: {x}", "Employee SSN {x} on file."],
        "de": ["Die US-Sozialversicherungsnummer lautet {x}.", "SSN: {x}"],
        "fr": ["Son numéro de sécurité sociale américain est {x}.", "SSN : {x}"],
        "es": ["Su número de seguro social de EE. UU. es {x}.", "SSN: {x}"],
    },
    "IP_ADDRESS": {
        "en": ["The login came from {x} last night.", "Blocked host {x} after five failures.", "Client IP: {x}"],
        "de": ["Die Anmeldung kam von {x}.", "Gesperrte Adresse: {x}", "Client-IP: {x}"],
        "fr": ["La connexion venait de {x}.", "Adresse bloquée : {x}", "IP du client : {x}"],
        "es": ["El acceso vino de {x}.", "Dirección bloqueada: {x}", "IP del cliente: {x}"],
    },
    "URL": {
        "en": ["See {x} for details.", "Reset your password at {x}.", "Profile: {x}"],
        "de": ["Details unter {x}.", "Passwort zurücksetzen: {x}", "Profil: {x}"],
        "fr": ["Voir {x} pour les détails.", "Réinitialisez le mot de passe sur {x}.", "Profil : {x}"],
        "es": ["Más información en {x}.", "Restablezca la contraseña en {x}.", "Perfil: {x}"],
    },
    "DATE_TIME": {
        "en": ["The appointment is on {x}.", "Born {x}.", "Payment is due {x}."],
        "de": ["Der Termin ist am {x}.", "Geboren am {x}.", "Fällig am {x}."],
        "fr": ["Le rendez-vous est le {x}.", "Né le {x}.", "Échéance le {x}."],
        "es": ["La cita es el {x}.", "Nacido el {x}.", "Vence el {x}."],
    },
}
FILLER = {
    "en": ["Thanks for your help.", "Kind regards.", "Let me know if anything is missing.", "The parcel arrived damaged.",
           "We moved last month."],
    "de": ["Vielen Dank für Ihre Hilfe.", "Mit freundlichen Grüßen.", "Das Paket kam beschädigt an.",
           "Wir sind letzten Monat umgezogen."],
    "fr": ["Merci pour votre aide.", "Cordialement.", "Le colis est arrivé abîmé.", "Nous avons déménagé le mois dernier."],
    "es": ["Gracias por su ayuda.", "Saludos cordiales.", "El paquete llegó dañado.", "Nos mudamos el mes pasado."],
}
NEG_FRAMES = {
    "en": "Reference {x} (not personal data).",
    "de": "Referenz {x} (keine personenbezogenen Daten).",
    "fr": "Référence {x} (pas une donnée personnelle).",
    "es": "Referencia {x} (no es un dato personal).",
}


# ---- values ----

def luhn_check_digit(body):
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def card_digits(rng, valid):
    kind = rng.choice(["visa", "mc", "amex", "disc"])
    if kind == "visa":
        body = "4" + "".join(rng.choice(string.digits) for _ in range(14))
    elif kind == "mc":
        body = rng.choice(["51", "52", "53", "54", "55"]) + "".join(rng.choice(string.digits) for _ in range(13))
    elif kind == "amex":
        body = rng.choice(["34", "37"]) + "".join(rng.choice(string.digits) for _ in range(12))
    else:
        body = "6011" + "".join(rng.choice(string.digits) for _ in range(11))
    check = luhn_check_digit(body)
    if not valid:
        check = str((int(check) + rng.randint(1, 9)) % 10)
    return body + check, kind


def format_card(rng, digits, kind):
    style = rng.choice(["space", "dash", "plain"])
    if kind == "amex":
        groups = [digits[:4], digits[4:10], digits[10:]]
    else:
        groups = [digits[i:i + 4] for i in range(0, len(digits), 4)]
    if style == "space":
        return " ".join(groups)
    if style == "dash":
        return "-".join(groups)
    return digits


def iban_check(country, bban):
    rearranged = bban + country + "00"
    number = "".join(str(int(c, 36)) for c in rearranged)
    return "%02d" % (98 - int(number) % 97)


IBAN_BBAN = {
    "DE": lambda r: "".join(r.choice(string.digits) for _ in range(18)),
    "FR": lambda r: "".join(r.choice(string.digits) for _ in range(23)),
    "ES": lambda r: "".join(r.choice(string.digits) for _ in range(20)),
    "GB": lambda r: "NWBK" + "".join(r.choice(string.digits) for _ in range(14)),
    "NL": lambda r: "ABNA" + "".join(r.choice(string.digits) for _ in range(10)),
    "AT": lambda r: "".join(r.choice(string.digits) for _ in range(16)),
}
LANG_IBAN = {"en": ["GB", "NL", "DE"], "de": ["DE", "AT"], "fr": ["FR", "NL"], "es": ["ES", "FR"]}


def iban(rng, lang, valid):
    country = rng.choice(LANG_IBAN[lang])
    bban = IBAN_BBAN[country](rng)
    check = iban_check(country, bban)
    if not valid:
        check = "%02d" % ((int(check) + rng.randint(1, 50)) % 97 + 2)
        if check == iban_check(country, bban):
            check = "%02d" % ((int(check) + 1) % 97 + 2)
    compact = country + check + bban
    if rng.random() < 0.7:
        return " ".join(compact[i:i + 4] for i in range(0, len(compact), 4))
    return compact


def ssn(rng, valid):
    if valid:
        area = rng.choice([a for a in range(1, 900) if a != 666])
        group = rng.randint(1, 99)
        serial = rng.randint(1, 9999)
    else:
        bad = rng.choice(["area0", "area666", "area9", "group0", "serial0"])
        area = {"area0": 0, "area666": 666, "area9": rng.randint(900, 999)}.get(bad, rng.randint(1, 665))
        group = 0 if bad == "group0" else rng.randint(1, 99)
        serial = 0 if bad == "serial0" else rng.randint(1, 9999)
    sep = "-" if rng.random() < 0.8 else " "
    return "%03d%s%02d%s%04d" % (area, sep, group, sep, serial)


def phone(rng, lang):
    d = lambda n: "".join(rng.choice(string.digits) for _ in range(n))
    nz = lambda: str(rng.randint(2, 9))
    choices = {
        "en": [lambda: "+1 %s%s %s %s" % (nz(), d(2), "555", d(4)), lambda: "(%s%s) 555-%s" % (nz(), d(2), d(4)),
               lambda: "%s%s-555-%s" % (nz(), d(2), d(4)), lambda: "+44 20 7946 0%s" % d(3),
               lambda: "020 7946 0%s" % d(3), lambda: "+1%s%s555%s" % (nz(), d(2), d(4))],
        "de": [lambda: "+49 30 %s" % d(8), lambda: "030 %s" % d(8), lambda: "0171 %s" % d(7),
               lambda: "+49 89 %s %s" % (d(3), d(4)), lambda: "089 %s-%s" % (d(3), d(4))],
        "fr": [lambda: "+33 1 %s %s %s %s" % (d(2), d(2), d(2), d(2)), lambda: "01 %s %s %s %s" % (d(2), d(2), d(2), d(2)),
               lambda: "06.%s.%s.%s.%s" % (d(2), d(2), d(2), d(2)), lambda: "+33 6 %s %s %s %s" % (d(2), d(2), d(2), d(2))],
        "es": [lambda: "+34 91%s %s %s" % (d(1), d(3), d(3)), lambda: "91%s %s %s" % (d(1), d(3), d(3)),
               lambda: "6%s %s %s %s" % (d(2), d(2), d(2), d(2)), lambda: "+34 6%s %s %s" % (d(2), d(3), d(3))],
    }
    return rng.choice(choices[lang])()


def email(rng, lang):
    first = rng.choice(FIRST[lang]).lower()
    last = rng.choice(LAST[lang]).lower()
    # Addresses keep to ASCII local parts, as most real ones do.
    table = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "é": "e", "è": "e", "ê": "e", "ë": "e", "à": "a",
                           "â": "a", "ç": "c", "î": "i", "ï": "i", "ô": "o", "û": "u", "ù": "u", "ñ": "n", "í": "i",
                           "ó": "o", "ú": "u", "á": "a", "ì": "i"})
    first, last = first.translate(table), last.translate(table)
    local = rng.choice([first + "." + last, first[0] + last, first + "_" + last + str(rng.randint(1, 99)),
                        first + "+" + rng.choice(["news", "shop", "work"])])
    return local + "@" + rng.choice(DOMAINS[lang])


def ipv4(rng):
    return "%d.%d.%d.%d" % (rng.choice([10, 172, 192, 203, 81, 213]), rng.randint(0, 255), rng.randint(0, 255),
                            rng.randint(1, 254))


def ipv6(rng):
    h = lambda: "%x" % rng.randint(1, 0xffff)
    return rng.choice([
        lambda: "2001:db8:%s:%s::%s" % (h(), h(), h()),
        lambda: "fe80::%s:%s:%s:%s" % (h(), h(), h(), h()),
        lambda: ":".join("%x" % rng.randint(0, 0xffff) for _ in range(8)),
        lambda: "2001:db8::%s" % h(),
    ])()


def url(rng, lang):
    host = rng.choice(DOMAINS[lang])
    path = rng.choice(["/account/reset?token=%s" % "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(10)),
                       "/u/%d" % rng.randint(100, 99999), "/orders/%d/track" % rng.randint(1000, 9999), ""])
    return rng.choice(["https://", "http://", "https://www.", "www."]) + host + path


def date(rng, lang):
    y, m, day = rng.randint(1950, 2026), rng.randint(1, 12), rng.randint(1, 28)
    forms = {
        "en": ["%04d-%02d-%02d" % (y, m, day), "%s %d, %d" % (MONTHS["en"][m - 1], day, y),
               "%d %s %d" % (day, MONTHS["en"][m - 1], y), "%02d/%02d/%04d" % (m, day, y)],
        "de": ["%02d.%02d.%04d" % (day, m, y), "%d. %s %d" % (day, MONTHS["de"][m - 1], y), "%04d-%02d-%02d" % (y, m, day)],
        "fr": ["%02d/%02d/%04d" % (day, m, y), "%d %s %d" % (day, MONTHS["fr"][m - 1], y), "%04d-%02d-%02d" % (y, m, day)],
        "es": ["%02d/%02d/%04d" % (day, m, y), "%d de %s de %d" % (day, MONTHS["es"][m - 1], y),
               "%04d-%02d-%02d" % (y, m, day)],
    }
    if rng.random() < 0.15:
        return "%04d-%02d-%02dT%02d:%02d:%02dZ" % (y, m, day, rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59))
    return rng.choice(forms[lang])


def value(rng, kind, lang):
    if kind == "EMAIL":
        return email(rng, lang)
    if kind == "PHONE":
        return phone(rng, lang)
    if kind == "CREDIT_CARD":
        return format_card(rng, *card_digits(rng, True))
    if kind == "IBAN":
        return iban(rng, lang, True)
    if kind == "US_SSN":
        return ssn(rng, True)
    if kind == "IP_ADDRESS":
        return ipv4(rng) if rng.random() < 0.6 else ipv6(rng)
    if kind == "URL":
        return url(rng, lang)
    if kind == "DATE_TIME":
        return date(rng, lang)
    raise ValueError(kind)


def negative(rng, lang):
    kind = rng.choice(["card_bad_luhn", "iban_bad_check", "ssn_invalid", "ipv4_out_of_range", "version", "order_number",
                       "amount", "postcode", "isbn", "short_number"])
    if kind == "card_bad_luhn":
        return kind, format_card(rng, *card_digits(rng, False))
    if kind == "iban_bad_check":
        return kind, iban(rng, lang, False)
    if kind == "ssn_invalid":
        return kind, ssn(rng, False)
    if kind == "ipv4_out_of_range":
        return kind, "%d.%d.%d.%d" % (rng.randint(256, 999), rng.randint(0, 255), rng.randint(0, 255), rng.randint(0, 255))
    if kind == "version":
        return kind, "v%d.%d.%d" % (rng.randint(1, 9), rng.randint(0, 30), rng.randint(0, 99))
    if kind == "order_number":
        return kind, "ORD-%s-%d" % ("".join(rng.choice(string.ascii_uppercase) for _ in range(3)), rng.randint(10000, 99999))
    if kind == "amount":
        return kind, rng.choice(["€1.234,56", "$12,345.00", "1 299,00 €", "EUR 89.90"])
    if kind == "postcode":
        return kind, rng.choice(["10115", "75008", "28013", "SW1A 1AA", "80331"])
    if kind == "isbn":
        return kind, "ISBN 978-%d-%02d-%06d-%d" % (rng.randint(0, 9), rng.randint(10, 99), rng.randint(0, 999999), rng.randint(0, 9))
    return kind, "#%d" % rng.randint(1, 9999)


# ---- records ----

class Builder:
    """Text assembled from pieces; labelled pieces record their code point spans."""

    def __init__(self):
        self.text = ""
        self.entities = []
        self.negatives = []

    def add(self, s):
        self.text += s

    def label(self, kind, s):
        start = len(self.text)
        self.text += s
        self.entities.append({"type": kind, "start": start, "end": len(self.text)})

    def neg(self, kind, s):
        start = len(self.text)
        self.text += s
        self.negatives.append({"kind": kind, "start": start, "end": len(self.text)})

    def framed(self, frame, put):
        before, after = frame.split("{x}")
        self.add(before)
        put()
        self.add(after)


TYPES = ["EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "US_SSN", "IP_ADDRESS", "URL", "DATE_TIME"]


def sentences(rng, b, lang, kinds, negs):
    items = [("pos", k) for k in kinds] + [("neg", None)] * negs
    rng.shuffle(items)
    for i, (what, kind) in enumerate(items):
        if i:
            b.add(" ")
        if rng.random() < 0.3:
            b.add(rng.choice(FILLER[lang]) + " ")
        if what == "pos":
            v = value(rng, kind, lang)
            b.framed(rng.choice(FRAMES[kind][lang]), lambda: b.label(kind, v))
        else:
            nk, v = negative(rng, lang)
            b.framed(NEG_FRAMES[lang], lambda: b.neg(nk, v))


def record_text(rng, lang, kinds, negs):
    b = Builder()
    sentences(rng, b, lang, kinds, negs)
    return b


def record_email(rng, lang, kinds, negs):
    b = Builder()
    first, last = rng.choice(FIRST[lang]), rng.choice(LAST[lang])
    b.add("From: %s %s <" % (first, last))
    b.label("EMAIL", email(rng, lang))
    b.add(">\nTo: ")
    b.label("EMAIL", email(rng, lang))
    b.add("\nDate: %s, " % rng.choice(DAYS))
    b.label("DATE_TIME", "%d %s %d" % (rng.randint(1, 28), rng.choice(SHORT_MONTHS), rng.randint(2015, 2026)))
    b.add(" ")
    b.label("DATE_TIME", "%02d:%02d:%02d" % (rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)))
    b.add(" %s\n" % rng.choice(["+0000", "+0100", "+0200", "-0500"]))
    b.add("Subject: %s\n\n" % rng.choice(["Re: your order", "Account update", "Invoice", "Question"]))
    b.add({"en": "Hello,\n\n", "de": "Hallo,\n\n", "fr": "Bonjour,\n\n", "es": "Hola,\n\n"}[lang])
    sentences(rng, b, lang, kinds, negs)
    b.add("\n\n%s %s\n" % (first, last))
    return b


CSV_HEAD = {"EMAIL": "email", "PHONE": "phone", "CREDIT_CARD": "card", "IBAN": "iban", "US_SSN": "ssn",
            "IP_ADDRESS": "ip", "URL": "website", "DATE_TIME": "date"}


def record_csv(rng, lang, kinds, negs):
    b = Builder()
    cols = list(dict.fromkeys(kinds))
    b.add("name," + ",".join(CSV_HEAD[k] for k in cols) + ",reference\n")
    for _ in range(rng.randint(2, 3)):
        b.add("%s %s" % (rng.choice(FIRST[lang]), rng.choice(LAST[lang])))
        for k in cols:
            b.add(",")
            v = value(rng, k, lang)
            if "," in v:
                b.add('"')
                b.label(k, v)
                b.add('"')
            else:
                b.label(k, v)
        b.add(",")
        if negs:
            nk, v = negative(rng, lang)
            if "," in v:
                b.add('"')
                b.neg(nk, v)
                b.add('"')
            else:
                b.neg(nk, v)
        else:
            b.add(str(rng.randint(100, 999)))
        b.add("\n")
    return b


JSON_KEY = {"EMAIL": "email", "PHONE": "phone", "CREDIT_CARD": "card_number", "IBAN": "iban", "US_SSN": "ssn",
            "IP_ADDRESS": "last_ip", "URL": "homepage", "DATE_TIME": "birth_date"}


def record_json(rng, lang, kinds, negs):
    b = Builder()
    b.add('{"customer": {"name": "%s %s"' % (rng.choice(FIRST[lang]), rng.choice(LAST[lang])))
    for k in dict.fromkeys(kinds):
        b.add(', "%s": "' % JSON_KEY[k])
        b.label(k, value(rng, k, lang))
        b.add('"')
    for _ in range(negs):
        nk, v = negative(rng, lang)
        b.add(', "ref": "')
        b.neg(nk, v)
        b.add('"')
    b.add(', "lang": "%s"}}' % lang)
    return b


MAKERS = {"text": record_text, "email": record_email, "csv": record_csv, "json": record_json}


def build(seed, count):
    rng = random.Random(seed)
    records = []
    for i in range(count):
        lang = LANGS[i % len(LANGS)]
        fmt = FORMATS[(i // len(LANGS)) % len(FORMATS)]
        # Every type appears in every language and format: cycle a starting type, add one or two more.
        first = TYPES[(i // (len(LANGS) * len(FORMATS))) % len(TYPES)]
        kinds = [first] + rng.sample(TYPES, rng.randint(0, 2))
        negs = rng.choice([0, 1, 1, 2])
        b = MAKERS[fmt](rng, lang, kinds, negs)
        for e in b.entities:
            assert b.text[e["start"]:e["end"]].strip() == b.text[e["start"]:e["end"]], e
        records.append({"id": "%s-%s-%04d" % (lang, fmt, i), "lang": lang, "format": fmt, "text": b.text,
                        "entities": b.entities, "negatives": b.negatives})
    return records


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--records", type=int, default=320)
    ap.add_argument("--out", default="tests/data/pii/corpus.jsonl")
    args = ap.parse_args()
    records = build(args.seed, args.records)
    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    counts = {}
    for r in records:
        for e in r["entities"]:
            counts[e["type"]] = counts.get(e["type"], 0) + 1
    print("%d records, entities: %s" % (len(records), ", ".join("%s %d" % kv for kv in sorted(counts.items()))))


if __name__ == "__main__":
    main()
